"""Pairing the files of a data set by name: stems, role suffixes, entries and collections.

A file's *stem* is its name without the image extension (``a.tif``, ``a.ome.tif``,
``a.ome.zarr`` -> ``a``), compared without regard to case. An annotation pairs with
the image of the same stem, or of its stem once a role suffix is taken off (see
:mod:`.collect` for the rules and the command line's ways to give files).
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


def listed(items) -> str:
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


def strip_role(stem: str, suffixes: Sequence[str]) -> str | None:
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
            if len(self.entries) == 1:
                raise InputError(problems[0])
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
                         + (f"; it holds {listed(q.name for q in skipped)}" if skipped else " (it is empty)"))
    return found, [q.name for q in skipped]


def files_by_stem(paths: Sequence[Path], what: str) -> dict[str, Path]:
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
    keyed = files_by_stem(images, "images")
    claims: dict[Path, list[Path]] = {}
    orphans = []
    for o in others:
        stem = image_stem(o)
        image = keyed.get(stem.lower())
        if image is None:
            base = strip_role(stem, suffixes)
            image = keyed.get(base.lower()) if base else None
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


def unique_names(entries: list[Entry]) -> None:
    names = [e.image.name for e in entries]
    for e in entries:
        e.name = e.image.name if names.count(e.image.name) == 1 else f"{e.image.parent.name}/{e.image.name}"
    full = [str(e.image.resolve()) for e in entries]
    dup = sorted({e.image.name for e, f in zip(entries, full) if full.count(f) > 1})
    if dup:
        raise InputError(f"the same image is given twice: {listed(dup)}")


