"""Where an image's annotations are: scanned once, block by block, into a coarse count grid.

:func:`scan_labels` reads annotations region by region (never the whole image) and
keeps a count of annotated (> 0) pixels per cell of a coarse grid and a histogram
of label values (:class:`LabelStats`). The grid weights images by annotated
content, centres patches on annotations and places validation slabs without a
per-pixel mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .axes import Layout
from .sources import Source, read_region

CELL = {2: (16, 16), 3: (4, 16, 16)}
"""Cell of the annotation count grid (grown for huge images so a grid stays under :data:`MAX_CELLS`)."""
MAX_CELLS = 1 << 20
SCAN_BLOCK = {2: (1024, 1024), 3: (32, 256, 256)}
"""Region of annotations read at once while scanning them (memory bound of the scan)."""


@dataclass
class LabelStats:
    """Where an image's annotations are, at cell granularity, and which values they hold.

    Attributes
    ----------
    cell
        Cell size per spatial dim.
    grid
        ``(planes, *cells)`` number of annotated (> 0) pixels per cell.
    values, counts
        Distinct label values (0 included when present) and their pixel counts.
    """

    cell: tuple[int, ...]
    grid: np.ndarray
    values: np.ndarray
    counts: np.ndarray

    @property
    def n_annotated(self) -> int:
        return int(self.grid.sum())

    def plane_counts(self) -> np.ndarray:
        return self.grid.reshape(len(self.grid), -1).sum(axis=1)


def _cell_size(layout: Layout) -> tuple[int, ...]:
    cell = list(CELL[layout.spatial_dims])
    spatial = layout.spatial_shape

    def n_cells() -> int:
        return layout.n_samples * int(np.prod([math.ceil(s / c) for s, c in zip(spatial, cell)]))

    while n_cells() > MAX_CELLS and any(c < s for c, s in zip(cell, spatial)):
        cell = [c * 2 if c < s else c for c, s in zip(cell, spatial)]
    return tuple(cell)


def scan_labels(source: Source, layout: Layout) -> LabelStats:
    """Read annotations block by block: per-cell annotated counts and value histogram.

    Raises :class:`InputError` naming the file for fractional, NaN or negative labels.
    """
    nd = layout.spatial_dims
    spatial = layout.spatial_shape
    cell = _cell_size(layout)
    cells = tuple(math.ceil(s / c) for s, c in zip(spatial, cell))
    grid = np.zeros((layout.n_samples, *cells), dtype=np.int32)  # kept per image: a few % of a uint16 image
    block = tuple(max(c, (b // c) * c) for b, c in zip(SCAN_BLOCK[nd], cell))
    hist = np.zeros(0, dtype=np.int64)
    big: list[tuple[np.ndarray, np.ndarray]] = []
    starts = [range(0, s, b) for s, b in zip(spatial, block)]
    for plane in range(layout.n_samples):
        for corner in np.ndindex(*[len(r) for r in starts]):
            lo = [starts[d][i] for d, i in enumerate(corner)]
            box = tuple(slice(a, min(a + b, s)) for a, b, s in zip(lo, block, spatial))
            lab = whole_numbers(read_region(source, layout, plane, box)[0], source.name)
            ann = lab > 0
            padded = [math.ceil(n / c) * c for n, c in zip(ann.shape, cell)]
            if tuple(padded) != ann.shape:
                ann = np.pad(ann, [(0, p - s) for p, s in zip(padded, ann.shape)])
            shape = [v for p, c in zip(padded, cell) for v in (p // c, c)]
            counts = ann.reshape(shape).sum(axis=tuple(range(1, 2 * nd, 2)))
            where = tuple(slice(a // c, a // c + n) for a, c, n in zip(lo, cell, counts.shape))
            grid[(plane, *where)] += counts
            top = int(lab.max()) if lab.size else 0
            if top < (1 << 20):
                bc = np.bincount(lab.ravel(), minlength=1)
                if len(bc) > len(hist):
                    hist = np.pad(hist, (0, len(bc) - len(hist)))
                hist[: len(bc)] += bc
            else:
                big.append(np.unique(lab, return_counts=True))
    values = np.flatnonzero(hist).astype(np.int64)
    counts = hist[values]
    if big:
        allv = np.concatenate([values] + [u.astype(np.int64) for u, _ in big])
        allc = np.concatenate([counts] + [c for _, c in big])
        values, inverse = np.unique(allv, return_inverse=True)
        counts = np.bincount(inverse, weights=allc).astype(np.int64)
    return LabelStats(cell, grid, values, counts)


def whole_numbers(lab: np.ndarray, name: str) -> np.ndarray:
    if lab.dtype.kind == "b":
        return lab.astype(np.uint8)
    if lab.dtype.kind == "f":
        if not np.all(np.isfinite(lab)) or not np.all(lab == np.round(lab)):
            raise InputError(f"{name}: annotations must be whole-number label ids (found fractional or NaN values)")
        lab = lab.astype(np.int64)
    elif lab.dtype.kind not in "iu":
        raise InputError(f"{name}: annotations must be an integer label image, got dtype {lab.dtype}")
    if lab.dtype.kind == "i" and lab.size and lab.min() < 0:
        raise InputError(f"{name}: annotations contain negative ids; label ids must be >= 0 "
                         "(0 = not annotated / background)")
    return lab
