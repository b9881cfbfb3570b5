"""Tasks bound to a data set: what every patch task's ``make_dataset_problem`` shares.

A task trained on a :class:`~..data.dataset.DataSet` draws its batches with a
:class:`~..data.sampling.DataSetSampler` (patches read lazily across the images) and
validates on the held-out parts of :meth:`DataSet.split` (whole images, planes or
regions). Validation reads its crops once, when training starts, and keeps them in
memory: at most :data:`VAL_PIXELS` pixels in all, cut around the annotations of big
held-out images, so that validating a set of huge images costs what validating one
image does. The crops are indexed like the in-memory arrays of the one-image path
(:class:`Crops`), so a task's ``validate`` serves both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.holdout import Split, listed, spread
from ..data.patches import ValRegion, fit_patch
from ..data.sampling import DataSetSampler
from ..errors import InputError

if TYPE_CHECKING:
    from ..data.dataset import DataSet
    from ..data.targets import Targets
    from ..settings.train import TrainConfig

VAL_PIXELS = {2: 1 << 20, 3: 1 << 21}
"""Most pixels (per channel) scored by one validation across all held-out crops (2D, 3D)."""
MIN_VAL_PIXELS = {2: 128 * 128, 3: 16 * 64 * 64}
"""Smallest crop worth scoring: with more held-out planes than the budget has room for, some are left out."""


class Crops(dict):
    """Validation crops by region number, indexed like the one-image arrays.

    ``crops[k]`` is crop ``k``; ``crops[(k, *index)]`` indexes into it, as
    ``array[(sample, *index)]`` does for the samples of one image.
    """

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            return dict.__getitem__(self, key[0])[key[1:]]
        return dict.__getitem__(self, key)


@dataclass
class SetParts:
    """A data set made ready for one task: its sampler and the validation crops."""

    sampler: DataSetSampler
    split: Split
    regions: list[ValRegion] = field(default_factory=list)
    """One per crop: ``sample`` is the crop's number, ``box`` the scored box inside the crop."""
    inputs: Crops = field(default_factory=Crops)
    """Normalised inputs ``(C, *crop)`` (non-finite pixels as 0), a margin of context around the box."""
    invalid: Crops | None = None
    """Where the inputs were not finite (only when some were)."""
    truths: Crops | None = None
    """Raw annotations ``(*crop)``."""
    targets: Crops | None = None
    """Normalised target images ``(C, *crop)`` (NaN = ignore)."""
    where: list[tuple[int, int]] = field(default_factory=list)
    """``(image, plane)`` of each crop."""
    notices: list[str] = field(default_factory=list)

    @property
    def held_pixels(self) -> int:
        return int(sum(np.prod([b.stop - b.start for b in r.box]) for r in self.regions))


def set_patch(ds: DataSet, config: TrainConfig, divisor: int, **defaults: Any) -> tuple[int, ...]:
    """The patch of a data set: fitted to its largest image (smaller ones are padded)."""
    largest = tuple(max(lay.spatial_shape[d] for lay in ds.layouts) for d in range(ds.spatial_dims))
    return fit_patch(config.patch_size, largest, divisor, **defaults)


def set_parts(ds: DataSet, config: TrainConfig, rng: np.random.Generator, targets: Targets, patch: tuple[int, ...],
              *, margin: int, split: Split | None = None, budget: int | None = None, **options: Any) -> SetParts:
    """The sampler over the training parts of ``ds`` and the validation crops of its held-out parts.

    ``options`` go to :class:`~..data.sampling.DataSetSampler` (``focus``,
    ``rescale``, ``intensity``); ``split`` defaults to :meth:`DataSet.split` with the
    config's validation share and what the targets need.
    """
    if split is None:
        split = ds.split(config.val_fraction, needs=targets.needs)
    sampler = DataSetSampler(ds, patch, targets, rng, split=split, augment=config.augment, **options)
    parts = SetParts(sampler, split)
    if sampler.skipped:
        parts.notices.append(f"{len(sampler.skipped)} image(s) not trained on: {listed(sampler.skipped)}")
    budget = budget or VAL_PIXELS[ds.spatial_dims]
    invalid, truths, tgts = Crops(), Crops(), Crops()
    for k, (i, plane, box) in enumerate(validation_boxes(ds, split, budget, targets.needs)):
        shape = ds.layouts[i].spatial_shape
        grown = tuple(slice(max(0, b.start - margin), min(s, b.stop + margin)) for b, s in zip(box, shape))
        x = ds.read_image(i, plane, grown, keep_nan=True)
        bad = ~np.isfinite(x)
        if bad.any():
            invalid[k] = bad
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        parts.inputs[k] = x
        if targets.needs == "labels":
            truths[k] = ds.read_labels(i, plane, grown)
        elif targets.needs == "target":
            tgts[k] = ds.read_target(i, plane, grown)
        parts.regions.append(ValRegion(k, tuple(slice(b.start - g.start, b.stop - g.start)
                                                for b, g in zip(box, grown))))
        parts.where.append((i, plane))
    parts.invalid = invalid or None
    parts.truths = truths if targets.needs == "labels" else None
    parts.targets = tgts if targets.needs == "target" else None
    if split.mode != "none":
        parts.notices.append(split.describe(ds.names) + (f", scored on {parts.held_pixels:,} pixels"
                                                         if parts.regions else ""))
    return parts


def validation_boxes(ds: DataSet, split: Split, budget: int, needs: str) -> list[tuple[int, int, tuple[slice, ...]]]:
    """``(image, plane, box)`` to validate on: every held-out plane, each cut to its share of ``budget``.

    A whole held-out image contributes each of its usable planes. With more planes
    than the budget has room for (:data:`MIN_VAL_PIXELS` each), an evenly spread
    selection is kept. A box larger than its share is cut to the share around the
    densest annotations (or its centre without annotations).
    """
    items = []
    for h in split.held:
        planes = [h.plane] if h.plane is not None else range(ds.n_planes(h.sample))
        for p in planes:
            if needs == "labels":
                stats = ds.label_stats(h.sample)
                if stats is None or not stats.grid[p].any():
                    continue
            items.append((h.sample, int(p), h.box))
    if not items:
        return []
    room = max(1, budget // MIN_VAL_PIXELS[ds.spatial_dims])
    if len(items) > room:
        items = spread(items, room) if room > 1 else items[:1]
    share = budget // len(items)
    return [(i, p, cap_box(ds, i, p, box, share, needs)) for i, p, box in items]


def cap_box(ds: DataSet, i: int, plane: int, box: tuple[slice, ...], pixels: int, needs: str) -> tuple[slice, ...]:
    """``box``, or a part of it with at most about ``pixels`` pixels where the annotations are densest."""
    sizes = [b.stop - b.start for b in box]
    if math.prod(sizes) <= pixels:
        return box
    sides = [0] * len(sizes)
    remaining = float(pixels)
    for j, d in enumerate(np.argsort(sizes)):  # the narrow sides first: a slab keeps its width
        side = int(round(remaining ** (1.0 / (len(sizes) - j))))
        sides[d] = int(min(sizes[d], max(8, side)))
        remaining /= sides[d]
    centre = [b.start + s / 2 for b, s in zip(box, sizes)]
    stats = ds.label_stats(i) if needs == "labels" else None
    if stats is not None:
        centre = _densest(stats.grid[plane], stats.cell, box, sides) or centre
    out = []
    for c, side, b in zip(centre, sides, box):
        start = int(round(c - side / 2))
        start = min(max(start, b.start), b.stop - side)
        out.append(slice(start, start + side))
    return tuple(out)


def _densest(grid: np.ndarray, cell: tuple[int, ...], box: tuple[slice, ...], sides: list[int]) -> list[float] | None:
    """Pixel centre of the window of ``sides`` inside ``box`` holding the most annotated cells, if any."""
    from scipy import ndimage as ndi

    cells = tuple(slice(b.start // c, -(-b.stop // c)) for b, c in zip(box, cell))
    sub = grid[cells].astype(np.float64)
    if not sub.any():
        return None
    window = [max(1, s // c) for s, c in zip(sides, cell)]
    density = ndi.uniform_filter(sub, size=window, mode="constant")
    best = np.unravel_index(int(np.argmax(density)), sub.shape)
    return [(cs.start + j + 0.5) * c for cs, j, c in zip(cells, best, cell)]


def require_set_signal(ds: DataSet) -> None:
    """Raise if every image of ``ds`` is constant (nothing to learn); see :func:`.denoise.require_signal`."""
    flat = [ds.names[i] for i in range(len(ds))
            if all(not hi - lo > 1e-12 for lo, hi in zip(*ds.ranges(i)))]
    if len(flat) == len(ds):
        raise InputError("every image is constant (each pixel has the same value): there is no structure or "
                         "noise to learn from")

