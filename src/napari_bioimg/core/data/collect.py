"""Finding the files of a data set: images paired with annotations, targets or class tables.

The engine side of the command line's ``--image`` / ``--labels`` / ``--target`` /
``--classes`` / ``--data`` (no argparse here). Four ways to say what to train on:

* folders: ``images=[IMG_DIR], labels=[LBL_DIR]`` pairs files by name (below);
* files in order: ``images=[a.tif, b.tif], labels=[a_lbl.tif, b_lbl.tif]``;
* images alone: ``images=[NOISY_DIR]`` (every image, unannotated: self-supervised
  training, prediction);
* a table: ``data=pairs.csv`` with columns ``image`` and optionally ``labels``,
  ``target``, ``classes``, ``split`` (``train`` | ``val`` | empty) and ``weight``;
  paths are relative to the table's folder.

Pairing by name
---------------
A file's *stem* is its name without the image extension (``a.tif``, ``a.ome.tif``,
``a.ome.zarr`` -> ``a``), compared without regard to case. An annotation pairs with
the image of the same stem, or of its stem once a role suffix is taken off:
``_mask``, ``_masks``, ``_label``, ``_labels``, ``_lbl``, ``_seg``, ``_annotation``,
``_annotations``, ``_gt`` (also written with ``-`` or ``.``), so ``masks/a.tif`` and
``masks/a_mask.tif`` both pair with ``imgs/a.tif``. Targets take ``_target``,
``_clean``, ``_gt``; class tables ``_classes``, ``_class``. Images and annotations
may share one folder: files whose stem ends in a role suffix and names an image there
are the annotations. Prefixes (``mask_a.tif``) are not recognised: rename, or list
the files in order, or write a table.

Classification takes (image, objects, classes) triples the same ways: ``labels`` are
the objects, ``classes`` one table per image (paired like annotations, or in order),
or ONE table with an ``image`` column naming each row's image (file name or stem).

Bad input fails before anything is trained, with every problem named at once:
missing files, unpaired files (listed), an empty folder, a table with missing files,
two files with the same name, unreadable files (:meth:`Collection.open`). Nothing is
ever written or moved.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .dataset import DataSet, Sample, make_sample
from .sources import IMAGE_SUFFIXES, is_image_path

LABEL_SUFFIXES = ("mask", "masks", "label", "labels", "lbl", "seg", "annotation", "annotations", "gt")
TARGET_SUFFIXES = ("target", "clean", "gt")
CLASS_SUFFIXES = ("classes", "class")
SEPARATORS = ("_", "-", ".")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
MULTI_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.zarr")
IMAGE_COLUMNS = ("image", "images", "file", "filename", "path")
LABEL_COLUMNS = ("labels", "label", "mask", "masks", "annotation", "annotations", "objects")
MAX_LISTED = 8

PathLike = str | os.PathLike


def _listed(items) -> str:
    items = [str(i) for i in items]
    more = f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return ", ".join(items[:MAX_LISTED]) + more


def image_stem(path: PathLike) -> str:
    """The file name without its image (or table) extension: ``a.ome.tif`` -> ``a``."""
    name = Path(str(path).rstrip("/\\")).name
    low = name.lower()
    for suffix in MULTI_SUFFIXES + IMAGE_SUFFIXES + (".zarr",) + TABLE_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _strip_role(stem: str, suffixes: Sequence[str]) -> str | None:
    low = stem.lower()
    for suffix in suffixes:
        for sep in SEPARATORS:
            end = sep + suffix
            if low.endswith(end) and len(low) > len(end):
                return stem[: -len(end)]
    return None


@dataclass
class Entry:
    """One image of a collection and the files that go with it."""

    image: Path
    labels: Path | None = None
    target: Path | None = None
    classes: Path | dict | None = None
    """A per-image class table, or the rows of a shared table (``{column: [values]}``)."""
    split: str = "auto"
    weight: float = 1.0
    name: str = ""


@dataclass
class Collection:
    """The files of a data set, paired and checked, not yet opened."""

    entries: list[Entry]
    notices: list[str] = field(default_factory=list)
    """What was tolerated: ignored files, images kept without annotations."""

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def images(self) -> list[Path]:
        return [e.image for e in self.entries]

    def open(self, *, axes: str | None = None, spatial_dims: int | None = None,
             id_columns: Sequence[str] | None = None) -> DataSet:
        """Open every file lazily (headers only) into a :class:`~.dataset.DataSet`.

        Every file that cannot be used is named in one error: unreadable files, an
        annotation or target whose shape differs from its image's, bad class tables;
        then the data set checks channels and 2D/3D across images.
        """
        from .annotations import ID_COLUMNS, classes_from_table
        from .io import read_table

        samples: list[Sample] = []
        problems: list[str] = []
        for e in self.entries:
            try:
                classes = None
                if e.classes is not None:
                    table = read_table(e.classes) if isinstance(e.classes, Path) else e.classes
                    classes = classes_from_table(table, tuple(id_columns or ID_COLUMNS))
                samples.append(make_sample(e.image, e.labels, target=e.target, classes=classes, axes=axes,
                                           name=e.name or e.image.name, split=e.split, weight=e.weight))
            except InputError as err:
                msg = str(err)
                problems.append(msg if any(p.name in msg for p in (e.image, e.labels, e.target) if p) else
                                f"{e.image.name}: {msg}")
        if problems:
            raise InputError(f"{len(problems)} of {len(self.entries)} image(s) cannot be used: " + "; ".join(problems))
        return DataSet(samples, spatial_dims=spatial_dims)


def list_images(folder: PathLike) -> tuple[list[Path], list[str]]:
    """Images in a folder (not recursive, sorted by name) and the names of what was skipped.

    Images are TIFF, PNG/JPEG and NPY files and zarr folders; hidden files are skipped
    silently, anything else is reported.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    found, skipped = [], []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        (found if is_image_path(p) else skipped).append(p)
    if not found:
        raise InputError(f"no images (.tif, .tiff, .png, .jpg, .npy, .zarr) in {folder}"
                         + (f"; it holds {_listed(q.name for q in skipped)}" if skipped else " (it is empty)"))
    return found, [q.name for q in skipped]


def _is_folder(path: Path) -> bool:
    return path.is_dir() and not is_image_path(path)


def _check_exist(paths: Sequence[Path], flag: str) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise InputError(f"{flag}: not found: {_listed(missing)}")


def _by_key(paths: Sequence[Path], what: str) -> dict[str, Path]:
    keys: dict[str, list[Path]] = {}
    for p in paths:
        keys.setdefault(image_stem(p).lower(), []).append(p)
    dup = {k: v for k, v in keys.items() if len(v) > 1}
    if dup:
        detail = "; ".join(" and ".join(p.name for p in v) for v in dup.values())
        raise InputError(f"{what}: several files have the same name (which one is meant?): {detail}; "
                         "keep one of each")
    return {k: v[0] for k, v in keys.items()}


def pair_by_name(images: Sequence[Path], others: Sequence[Path], suffixes: Sequence[str], role: str
                 ) -> tuple[dict[Path, Path], list[Path], list[Path]]:
    """Pair ``others`` (annotations, targets, tables) with ``images`` by stem (see the module notes).

    Returns ``({image: other}, images without a partner, others without an image)``.
    Two others claiming one image raise :class:`InputError` naming them.
    """
    by_key = _by_key(images, "images")
    claims: dict[Path, list[Path]] = {}
    orphans = []
    for o in others:
        stem = image_stem(o)
        image = by_key.get(stem.lower())
        if image is None:
            base = _strip_role(stem, suffixes)
            image = by_key.get(base.lower()) if base else None
        if image is None:
            orphans.append(o)
            continue
        claims.setdefault(image, []).append(o)
    clash = {i: v for i, v in claims.items() if len(v) > 1}
    if clash:
        detail = "; ".join(f"{' and '.join(o.name for o in v)} for {i.name}" for i, v in clash.items())
        raise InputError(f"several {role} files match one image: {detail}; keep one per image")
    pairs = {i: v[0] for i, v in claims.items()}
    lonely = [i for i in images if i not in pairs]
    return pairs, lonely, orphans


def _split_shared_folder(files: Sequence[Path], suffixes: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """One folder holding images and annotations: annotations end in a role suffix naming an image there."""
    keys = {image_stem(f).lower() for f in files}
    images, others = [], []
    for f in files:
        base = _strip_role(image_stem(f), suffixes)
        (others if base is not None and base.lower() in keys else images).append(f)
    return images, others


def _expand(path: Path, notices: list[str]) -> list[Path]:
    """An image argument: a folder's images (two with one name refused), or the file itself."""
    if _is_folder(path):
        found, skipped = list_images(path)
        if skipped:
            notices.append(f"ignored {len(skipped)} non-image file(s) in {path}: {_listed(skipped)}")
        _by_key(found, f"images in {path}")
        return found
    if not is_image_path(path):
        raise InputError(f"{path.name} is not an image (.tif, .tiff, .png, .jpg, .npy or a .zarr folder)")
    return [path]


Group = tuple[Path, list[Path]]
"""An ``--image`` argument and the images it stands for."""


def _attach(groups: list[Group], given: Sequence[Path], suffixes: Sequence[str], role: str, flag: str,
            notices: list[str], unpaired: str) -> dict[Path, Path]:
    """Pair ``given`` (folders, or files in order) with the images of ``groups``."""
    if not given:
        return {}
    _check_exist(given, flag)
    images = [i for _, g in groups for i in g]
    folders = [g for g in given if _is_folder(g)]
    if folders and len(folders) != len(given):
        raise InputError(f"{flag}: give folders or files, not both")
    if folders:
        if len(folders) == 1:
            scopes = [(images, folders[0])]
        elif len(folders) == len(groups):
            scopes = [(g, f) for (_, g), f in zip(groups, folders)]
        else:
            raise InputError(f"{flag}: {len(folders)} folders for {len(groups)} --image argument(s); give one "
                             "folder for all images, or one per --image in the same order")
        pairs, lonely, orphans = {}, [], []
        for scope, folder in scopes:
            found, skipped = _tables(folder) if role == "class table" else list_images(folder)
            if any(folder.resolve() == im.parent.resolve() for im in scope):
                _, found = _split_shared_folder(found, suffixes)
            elif skipped:
                notices.append(f"ignored {len(skipped)} file(s) in {folder}: {_listed(skipped)}")
            p, lo, orph = pair_by_name(scope, found, suffixes, role)
            pairs.update(p)
            lonely += lo
            orphans += orph
    else:
        if len(given) != len(images):
            raise InputError(f"{len(images)} image(s) but {len(given)} {role} file(s) in {flag}; give one per "
                             f"image in the same order, or folders to pair by name")
        pairs = dict(zip(images, given))
        _check_order(pairs, images, suffixes, flag)
        lonely, orphans = [], []
    if orphans:
        raise InputError(f"{len(orphans)} {role} file(s) match no image: {_listed(o.name for o in orphans)} "
                         f"(a {role} file pairs with the image of the same name, optionally ending in "
                         f"{', '.join('_' + s for s in suffixes)})")
    if lonely:
        if unpaired == "error" or role != "annotation":
            hint = ("; add them, move these images out, or keep them unannotated" if role == "annotation"
                    else "; add them or move these images out")
            raise InputError(f"{len(lonely)} image(s) have no {role}: {_listed(i.name for i in lonely)}{hint}")
        notices.append(f"{len(lonely)} image(s) have no annotations and are kept unannotated: "
                       f"{_listed(i.name for i in lonely)}")
    return pairs


def _check_order(pairs: dict[Path, Path], images: list[Path], suffixes: Sequence[str], flag: str) -> None:
    """Files paired in order whose names clearly belong to another image are a mix-up: say so."""
    keys = {image_stem(i).lower(): i for i in images}
    crossed = []
    for image, other in pairs.items():
        stem = image_stem(other)
        base = (_strip_role(stem, suffixes) or stem).lower()
        own = {image_stem(image).lower()}
        if stem.lower() not in own and base not in own and (stem.lower() in keys or base in keys):
            crossed.append(f"{other.name} (given with {image.name})")
    if crossed:
        raise InputError(f"{flag}: files are paired in the order given, but {_listed(crossed)} name another "
                         "image; give them in the same order as the images")


def _tables(folder: Path) -> tuple[list[Path], list[str]]:
    found = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in TABLE_SUFFIXES and not p.name.startswith(".")]
    if not found:
        raise InputError(f"no class tables (.csv, .tsv, .txt) in {folder}")
    return found, []


def _unique_names(entries: list[Entry]) -> None:
    names = [e.image.name for e in entries]
    for e in entries:
        e.name = e.image.name if names.count(e.image.name) == 1 else f"{e.image.parent.name}/{e.image.name}"
    full = [str(e.image.resolve()) for e in entries]
    dup = sorted({e.image.name for e, f in zip(entries, full) if full.count(f) > 1})
    if dup:
        raise InputError(f"the same image is given twice: {_listed(dup)}")


def collect(images: Sequence[PathLike] = (), labels: Sequence[PathLike] = (), *,
            targets: Sequence[PathLike] = (), classes: Sequence[PathLike] = (), data: PathLike | None = None,
            unlabelled: str = "error") -> Collection:
    """Pair the files of a data set (see the module notes for the rules).

    Parameters
    ----------
    images
        Image files and/or folders of images (``--image``, repeatable).
    labels
        Annotation files (one per image, in order) or folders (paired by name).
    targets
        Restoration targets, like ``labels``.
    classes
        Class tables: one per image (files in order, or folders by name), or one
        table with an ``image`` column.
    data
        A table (CSV) listing the pairs instead; exclusive with the others.
    unlabelled
        ``"error"``: an image without an annotation file (when annotations are
        given) is an error listing them; ``"keep"``: keep it, unannotated.
    """
    if unlabelled not in ("error", "keep"):
        raise InputError(f"unlabelled must be 'error' or 'keep', got {unlabelled!r}")
    if data is not None:
        if images or labels or targets or classes:
            raise InputError("give either a data table or images (and annotations), not both")
        return read_pairs_table(data)
    if not images:
        raise InputError("no images given")
    notices: list[str] = []
    img_paths = [Path(p) for p in images]
    _check_exist(img_paths, "--image")
    label_dirs = {Path(p).resolve() for p in labels if _is_folder(Path(p))}
    groups: list[Group] = []
    for p in img_paths:
        found = _expand(p, notices)
        if _is_folder(p) and p.resolve() in label_dirs:  # images and their annotations in one folder
            found, _ = _split_shared_folder(found, LABEL_SUFFIXES)
        groups.append((p, found))
    expanded = [i for _, g in groups for i in g]
    lbl = _attach(groups, [Path(p) for p in labels], LABEL_SUFFIXES, "annotation", "--labels", notices, unlabelled)
    tgt = _attach(groups, [Path(p) for p in targets], TARGET_SUFFIXES, "target", "--target", notices, "error")
    cls = _attach_classes(groups, [Path(p) for p in classes], notices) if classes else {}
    entries = [Entry(p, lbl.get(p), tgt.get(p), cls.get(p)) for p in expanded]
    _unique_names(entries)
    return Collection(entries, notices)


def _attach_classes(groups: list[Group], given: list[Path], notices: list[str]) -> dict[Path, Path | dict]:
    _check_exist(given, "--classes")
    images = [i for _, g in groups for i in g]
    if len(given) == 1 and given[0].is_file():
        from .io import read_table

        table = read_table(given[0])
        columns = {c.strip().lower(): c for c in table}
        column = next((columns[c] for c in IMAGE_COLUMNS if c in columns), None)
        if column is not None:
            return _split_table(images, table, column, given[0])
    return dict(_attach(groups, given, CLASS_SUFFIXES, "class table", "--classes", notices, "error"))


def _split_table(images: list[Path], table: dict, column: str, path: Path) -> dict[Path, Path | dict]:
    """One class table for all images: its rows, grouped by the image they name."""
    by_key = _by_key(images, "images")
    groups: dict[Path, list[int]] = {}
    unknown = []
    for r, value in enumerate(table[column]):
        image = by_key.get(image_stem(value.strip()).lower())
        if image is None:
            unknown.append(f"{value} (row {r + 2})")
        else:
            groups.setdefault(image, []).append(r)
    if unknown:
        raise InputError(f"{path.name}: rows name images that are not given: {_listed(unknown)}")
    rest = [c for c in table if c != column]
    return {i: {c: [table[c][r] for r in rows] for c in rest} for i, rows in groups.items()}


def read_pairs_table(path: PathLike) -> Collection:
    """A CSV with columns ``image`` [, ``labels``, ``target``, ``classes``, ``split``, ``weight``].

    Paths are relative to the table's folder (absolute ones are kept); an empty
    ``labels`` cell is an unannotated image; ``split`` is ``train``, ``val`` or empty.
    """
    from .io import read_table

    path = Path(path)
    table = read_table(path, default_columns=())
    columns = {c.strip().lower(): c for c in table}
    image_col = next((columns[c] for c in IMAGE_COLUMNS if c in columns), None)
    if image_col is None:
        raise InputError(f"{path.name} needs a header row with an 'image' column (and 'labels', 'split' ...); "
                         f"its columns are: {_listed(table) or 'none'}")
    label_col = next((columns[c] for c in LABEL_COLUMNS if c in columns), None)
    known = {image_col, label_col} | {columns.get(c) for c in ("target", "classes", "split", "weight")}
    extra = [c for c in table if c not in known]
    root = path.parent
    n = len(table[image_col])
    if n == 0:
        raise InputError(f"{path.name} lists no images")

    def cell(col: str | None, r: int) -> str:
        return table[col][r].strip() if col else ""

    def resolve(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else root / p

    entries, missing, bad = [], [], []
    for r in range(n):
        row = r + 2  # 1-based, after the header
        image = cell(image_col, r)
        if not image:
            bad.append(f"row {row}: no image")
            continue
        files = {"image": resolve(image)}
        for role in ("labels", "target", "classes"):
            col = label_col if role == "labels" else columns.get(role)
            if cell(col, r):
                files[role] = resolve(cell(col, r))
        for role, p in files.items():
            if not p.exists():
                missing.append(f"{p} ({role}, row {row})")
        split = cell(columns.get("split"), r).lower() or "auto"
        if split not in ("auto", "train", "val"):
            bad.append(f"row {row}: split {split!r} (use train, val or leave it empty)")
        weight_text = cell(columns.get("weight"), r)
        try:
            weight = float(weight_text) if weight_text else 1.0
            if not weight >= 0:
                raise ValueError
        except ValueError:
            bad.append(f"row {row}: weight {weight_text!r} (a number >= 0)")
            weight = 1.0
        entries.append(Entry(files["image"], files.get("labels"), files.get("target"), files.get("classes"),
                             split, weight))
    if missing:
        raise InputError(f"{path.name}: {len(missing)} file(s) not found: {_listed(missing)} "
                         f"(relative paths start from {root})")
    if bad:
        raise InputError(f"{path.name}: {_listed(bad)}")
    _unique_names(entries)
    notices = [f"{path.name}: ignored column(s) {_listed(extra)}"] if extra else []
    return Collection(entries, notices)
