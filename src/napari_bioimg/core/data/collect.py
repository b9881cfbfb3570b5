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

from collections.abc import Sequence
from pathlib import Path

from ..errors import InputError
from .pairing import (
    CLASS_SUFFIXES,
    IMAGE_COLUMNS,
    LABEL_SUFFIXES,
    TABLE_SUFFIXES,
    TARGET_SUFFIXES,
    Collection,
    Entry,
    PathLike,
    files_by_stem,
    image_stem,
    list_images,
    listed,
    pair_by_name,
    strip_role,
    unique_names,
)
from .sources import is_image_path
from .tables import read_pairs_table, split_class_table

__all__ = ["Collection", "Entry", "collect", "image_stem", "list_images", "pair_by_name", "read_pairs_table"]


def _is_folder(path: Path) -> bool:
    return path.is_dir() and not is_image_path(path)


def _check_exist(paths: Sequence[Path], flag: str) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise InputError(f"{flag}: not found: {listed(missing)}")


def _split_shared_folder(files: Sequence[Path], suffixes: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """One folder holding images and annotations: annotations end in a role suffix naming an image there."""
    keys = {image_stem(f).lower() for f in files}
    images, others = [], []
    for f in files:
        base = strip_role(image_stem(f), suffixes)
        (others if base is not None and base.lower() in keys else images).append(f)
    return images, others


def _expand(path: Path, notices: list[str]) -> list[Path]:
    """An image argument: a folder's images (two with one name refused), or the file itself."""
    if _is_folder(path):
        found, skipped = list_images(path)
        if skipped:
            notices.append(f"ignored {len(skipped)} non-image file(s) in {path}: {listed(skipped)}")
        files_by_stem(found, f"images in {path}")
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
                notices.append(f"ignored {len(skipped)} file(s) in {folder}: {listed(skipped)}")
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
        raise InputError(f"{len(orphans)} {role} file(s) match no image: {listed(o.name for o in orphans)} "
                         f"({'an' if role[0] in 'aeiou' else 'a'} {role} file pairs with the image of the same name, optionally ending in "
                         f"{', '.join('_' + s for s in suffixes)})")
    if lonely:
        if unpaired == "error" or role != "annotation":
            hint = ("; add them, move these images out, or keep them unannotated" if role == "annotation"
                    else "; add them or move these images out")
            raise InputError(f"{len(lonely)} image(s) have no {role}: {listed(i.name for i in lonely)}{hint}")
        notices.append(f"{len(lonely)} image(s) have no annotations and are kept unannotated: "
                       f"{listed(i.name for i in lonely)}")
    return pairs


def _check_order(pairs: dict[Path, Path], images: list[Path], suffixes: Sequence[str], flag: str) -> None:
    """Files paired in order whose names clearly belong to another image are a mix-up: say so."""
    keys = {image_stem(i).lower(): i for i in images}
    crossed = []
    for image, other in pairs.items():
        stem = image_stem(other)
        base = (strip_role(stem, suffixes) or stem).lower()
        own = {image_stem(image).lower()}
        if stem.lower() not in own and base not in own and (stem.lower() in keys or base in keys):
            crossed.append(f"{other.name} (given with {image.name})")
    if crossed:
        raise InputError(f"{flag}: files are paired in the order given, but {listed(crossed)} name another "
                         "image; give them in the same order as the images")


def _tables(folder: Path) -> tuple[list[Path], list[str]]:
    found = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in TABLE_SUFFIXES and not p.name.startswith(".")]
    if not found:
        raise InputError(f"no class tables (.csv, .tsv, .txt) in {folder}")
    return found, []


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
    unique_names(entries)
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
            return split_class_table(images, table, column, given[0])
    return dict(_attach(groups, given, CLASS_SUFFIXES, "class table", "--classes", notices, "error"))


