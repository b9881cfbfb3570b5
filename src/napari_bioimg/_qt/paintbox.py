"""The box of a layer that one of napari's Labels ``paint`` events changed (brush, eraser, fill)."""

from __future__ import annotations

import numpy as np


def stroke_box(atoms, shape: tuple[int, ...]) -> tuple[slice, ...] | None:
    """The box around every pixel a napari paint event's history atoms changed."""
    lo = np.full(len(shape), np.iinfo(np.int64).max)
    hi = np.full(len(shape), -1)
    for atom in atoms:
        key = getattr(atom, "slice_key", None)
        if key is not None:
            starts = [s.start or 0 for s in key]
            stops = [s.stop if s.stop is not None else n for s, n in zip(key, shape)]
        else:
            indices = atom[0]
            if not len(indices) or not np.size(indices[0]):
                continue
            starts = [int(np.min(i)) for i in indices]
            stops = [int(np.max(i)) + 1 for i in indices]
        lo = np.minimum(lo, starts)
        hi = np.maximum(hi, stops)
    if (hi < 0).any():
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
