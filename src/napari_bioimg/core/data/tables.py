"""Tables that list a data set: ``pairs.csv`` (:func:`read_pairs_table`) and one class table for all images.

``pairs.csv`` has a header with ``image`` and optionally ``labels`` (or ``label``,
``mask(s)``, ``annotation(s)``, ``objects``), ``target``, ``classes``, ``split``
(``train``, ``val`` or empty) and ``weight``; paths are relative to the table's
folder.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .pairing import (
    IMAGE_COLUMNS,
    LABEL_COLUMNS,
    Collection,
    Entry,
    PathLike,
    files_by_stem,
    image_stem,
    listed,
    unique_names,
)


def split_class_table(images: list[Path], table: dict, column: str, path: Path) -> dict[Path, Path | dict]:
    """One class table for all images: its rows, grouped by the image they name."""
    keyed = files_by_stem(images, "images")
    groups: dict[Path, list[int]] = {}
    unknown = []
    for r, value in enumerate(table[column]):
        image = keyed.get(image_stem(value.strip()).lower())
        if image is None:
            unknown.append(f"{value} (row {r + 2})")
        else:
            groups.setdefault(image, []).append(r)
    if unknown:
        raise InputError(f"{path.name}: rows name images that are not given: {listed(unknown)}")
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
                         f"its columns are: {listed(table) or 'none'}")
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
        raise InputError(f"{path.name}: {len(missing)} file(s) not found: {listed(missing)} "
                         f"(relative paths start from {root})")
    if bad:
        raise InputError(f"{path.name}: {listed(bad)}")
    unique_names(entries)
    notices = [f"{path.name}: ignored column(s) {listed(extra)}"] if extra else []
    return Collection(entries, notices)
