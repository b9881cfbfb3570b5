"""Class annotations for objects, from the three ways a user gives them.

* a table (CSV, or a layer's ``features``) with an id column and a ``class`` column,
* points carrying a ``class`` value: the object under each point takes it,
* a label image painted with class ids over objects: each object takes the class
  painted most over it.

Each parser returns :class:`ClassAnnotations` (object id -> the user's class value)
plus warnings for what it had to skip. Class values stay as the user wrote them:
integers when every value is a whole number, otherwise strings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError

ID_COLUMNS = ("label_id", "label", "id", "object_id", "object", "index")
FRAME_COLUMNS = ("frame", "image", "index", "t", "z", "label_id", "id")
CLASS_COLUMNS = ("class", "class_name", "classes", "category")
MAX_LISTED = 5


@dataclass
class ClassAnnotations:
    """Object id -> class value, and the warnings met while reading them."""

    classes: dict[int, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.classes)


def _listed(values) -> str:
    values = list(values)
    more = f" and {len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else ""
    return ", ".join(str(v) for v in values[:MAX_LISTED]) + more


def class_value(value) -> Any:
    """A user's class cell -> ``None`` (not annotated), an ``int``, or a stripped ``str``."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None
        return int(value) if float(value).is_integer() else str(value)
    text = str(value).strip()
    if text.lower() in ("", "nan", "none", "na", "n/a"):
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and math.isfinite(number) else text


def unify_class_values(values: Sequence) -> list:
    """Keep ints only when all values are ints; otherwise compare everything as strings."""
    if all(isinstance(v, int) for v in values):
        return list(values)
    return [str(v) for v in values]


def sorted_classes(values) -> list:
    """Distinct class values in a stable order: numbers ascending, or strings alphabetically."""
    distinct = set(unify_class_values(list(values)))
    return sorted(distinct)


def _column(table: Any, names: Sequence[str], what: str, columns: list[str]) -> Sequence:
    lower = {str(c).strip().lower(): c for c in columns}
    for name in names:
        if name in lower:
            return list(table[lower[name]])
    raise InputError(f"the class table has no {what} column (tried {', '.join(names)}); its columns are: "
                     f"{', '.join(map(str, columns)) or 'none'}")


def classes_from_table(table: Mapping | Any, id_columns: Sequence[str] = ID_COLUMNS,
                       class_columns: Sequence[str] = CLASS_COLUMNS) -> ClassAnnotations:
    """Read ``{id column: [...], "class": [...]}`` (a dict of columns or a DataFrame).

    Rows with an empty class are "not annotated" and skipped; an id given twice
    with different classes is skipped with a warning.
    """
    columns = list(table.columns) if hasattr(table, "columns") else list(table.keys())
    ids = _column(table, id_columns, "object id", columns)
    values = _column(table, class_columns, "class", columns)
    out = ClassAnnotations()
    bad_ids, conflicts = [], set()
    raw: dict[int, Any] = {}
    for i, v in zip(ids, values):
        cls = class_value(v)
        if cls is None:
            continue
        key = class_value(i)
        if not isinstance(key, int) or key < 0:
            bad_ids.append(i)
            continue
        if key in raw and str(raw[key]) != str(cls):
            conflicts.add(key)
        raw[key] = cls
    if bad_ids:
        out.warnings.append(f"{len(bad_ids)} row(s) have an id that is not a whole number >= 0 and were skipped "
                            f"({_listed(bad_ids)})")
    if conflicts:
        out.warnings.append(f"object(s) {_listed(sorted(conflicts))} are given different classes in several rows "
                            "and were skipped")
    keys = [k for k in raw if k not in conflicts]
    out.classes = dict(zip(keys, unify_class_values([raw[k] for k in keys])))
    return out


def classes_from_points(labels: np.ndarray, coords: np.ndarray, classes: Sequence) -> ClassAnnotations:
    """The object under each point takes the point's class.

    Parameters
    ----------
    labels
        Object label image (any layout; the points' coordinates index it).
    coords
        ``(P, labels.ndim)`` point positions in the labels' pixel coordinates.
    classes
        ``P`` class values (empty values mean "no class" and are skipped).
    """
    labels = np.asarray(labels)
    coords = np.asarray(coords, dtype=np.float64)
    coords = coords.reshape(0, labels.ndim) if coords.size == 0 else np.atleast_2d(coords)
    if coords.shape[1] != labels.ndim:
        raise InputError(f"points have {coords.shape[1]} coordinates but the objects layer has {labels.ndim} dims")
    if len(coords) != len(classes):
        raise InputError(f"{len(coords)} points but {len(classes)} class values; give one class per point")
    out = ClassAnnotations()
    outside, background = [], []
    votes: dict[int, set] = {}
    first: dict[int, Any] = {}
    for p, v in zip(coords, classes):
        cls = class_value(v)
        if cls is None:
            continue
        idx = np.round(p).astype(np.int64)
        if np.any(idx < 0) or np.any(idx >= labels.shape):
            outside.append(tuple(np.round(p, 1)))
            continue
        obj = int(labels[tuple(idx)])
        if obj == 0:
            background.append(tuple(int(i) for i in idx))
            continue
        votes.setdefault(obj, set()).add(str(cls))
        first.setdefault(obj, cls)
    if outside:
        out.warnings.append(f"{len(outside)} point(s) lie outside the objects layer and were skipped "
                            f"(at {_listed(outside)})")
    if background:
        out.warnings.append(f"{len(background)} point(s) lie on background, not on an object, and were skipped "
                            f"(at {_listed(background)}); place points inside objects")
    conflicts = sorted(k for k, v in votes.items() if len(v) > 1)
    if conflicts:
        out.warnings.append(f"object(s) {_listed(conflicts)} carry points of different classes and were skipped")
    keys = [k for k in first if k not in conflicts]
    out.classes = dict(zip(keys, unify_class_values([first[k] for k in keys])))
    return out


def classes_from_painted(labels: np.ndarray, painted: np.ndarray) -> ClassAnnotations:
    """Each object takes the class id painted most over it (0 = not painted)."""
    labels = np.asarray(labels)
    painted = np.asarray(painted)
    if labels.shape != painted.shape:
        raise InputError(f"the painted class layer has shape {painted.shape} but the objects layer {labels.shape}; "
                         "they must cover the same pixels")
    if painted.dtype.kind not in "iub":
        raise InputError(f"painted classes must be integer ids, got dtype {painted.dtype}")
    out = ClassAnnotations()
    on = painted != 0
    stray = int(np.count_nonzero(on & (labels == 0)))
    if stray:
        out.warnings.append(f"{stray} painted pixel(s) lie on background, not on an object, and were ignored")
    hit = on & (labels != 0)
    if not hit.any():
        return out
    obj = labels[hit].astype(np.int64)
    cls = painted[hit].astype(np.int64)
    pairs, counts = np.unique(np.stack([obj, cls]), axis=1, return_counts=True)
    mixed = 0
    for o in np.unique(pairs[0]):
        sel = pairs[0] == o
        mixed += int(sel.sum() > 1)
        best = np.argmax(np.where(sel, counts, -1))
        out.classes[int(o)] = int(pairs[1, best])
    if mixed:
        out.warnings.append(f"{mixed} object(s) are painted with several classes; each takes its majority class")
    return out


def check_against_objects(ann: ClassAnnotations, present_ids: np.ndarray, what: str = "objects layer"
                          ) -> ClassAnnotations:
    """Drop (with a warning) annotated ids that are not in ``present_ids``."""
    present = set(int(i) for i in np.asarray(present_ids).ravel())
    missing = sorted(k for k in ann.classes if k not in present)
    if not missing:
        return ann
    kept = {k: v for k, v in ann.classes.items() if k in present}
    warn = f"{len(missing)} annotated id(s) are not in the {what} and were skipped ({_listed(missing)})"
    return ClassAnnotations(kept, [*ann.warnings, warn])


def as_class_annotations(value: Any, id_columns: Sequence[str] = ID_COLUMNS) -> ClassAnnotations:
    """Accept :class:`ClassAnnotations`, a ``{id: class}`` dict, or a table of columns."""
    if value is None:
        raise InputError("no class annotations given: give a table (id, class), points with a class, "
                         "or a painted class layer")
    if isinstance(value, ClassAnnotations):
        return value
    if hasattr(value, "columns"):
        return classes_from_table(value, id_columns)
    if isinstance(value, Mapping):
        keys = [str(k).strip().lower() for k in value]
        if any(k in CLASS_COLUMNS for k in keys):
            return classes_from_table(value, id_columns)
        return classes_from_table({"id": list(value.keys()), "class": list(value.values())}, ("id",))
    raise InputError(f"class annotations must be a table or an {{id: class}} mapping, got {type(value).__name__}")
