"""Validation of a data set: which images, planes or regions are held out (:func:`split_dataset`).

Images marked ``split="val"`` are the validation images; ``split="train"`` ones are
never held out. Otherwise, with :data:`MIN_WHOLE` or more usable images, about
``val_fraction`` of them are held out whole; with fewer but that many usable planes
(frames, slices), whole planes; otherwise a slab at the far end of each plane's
longest axis holding about ``val_fraction`` of its annotations, or a corner box
without annotations. Held-out images are never drawn; held-out planes and boxes give
"ignore" targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..settings.defaults import VAL_FRACTION
from .patches import split_validation
from .sources import full_box

if TYPE_CHECKING:
    from .imageset import ImageSet

MIN_WHOLE = 4
"""With this many annotated images (or planes) whole ones are held out for validation, as
:func:`~.patches.split_validation` does for the planes of one image; fewer give slabs."""
MIN_REGION_PIXELS = 20
EXACT_SLAB_PIXELS = 16 << 20
"""Planes up to this size get a pixel-exact validation slab (their annotations are read once more)."""
MAX_LISTED = 5


def listed(names: Sequence[str]) -> str:
    """``a, b, c and 4 more``: names for a message."""
    names = list(names)
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


@dataclass(frozen=True)
class HeldOut:
    """A validation region: a sample, one of its planes (``None``: all) and a spatial box."""

    sample: int
    plane: int | None
    box: tuple[slice, ...]


@dataclass
class Split:
    """Which parts of a data set are held out for validation.

    ``mode`` says how: ``"images"`` (whole images), ``"planes"`` (whole frames or
    slices of the images), ``"regions"`` (a slab of each annotated plane) or
    ``"none"``. Training never samples a held-out pixel's target.
    """

    mode: str
    held: list[HeldOut] = field(default_factory=list)

    def whole(self, sample: int) -> bool:
        """True when every plane of ``sample`` is held out."""
        return any(h.sample == sample and h.plane is None for h in self.held)

    def boxes(self, sample: int, plane: int) -> list[tuple[slice, ...]]:
        """Held-out boxes inside one plane of a sample that is (partly) trained on."""
        return [h.box for h in self.held if h.sample == sample and h.plane == plane]

    def describe(self, names: Sequence[str]) -> str:
        if self.mode == "none":
            return "no validation"
        if self.mode == "images":
            return f"validation on {len(self.held)} whole image(s): {listed([names[h.sample] for h in self.held])}"
        what = "plane(s)" if self.mode == "planes" else "region(s)"
        return f"validation on {len(self.held)} {what} of {len({h.sample for h in self.held})} image(s)"


def split_dataset(ds: ImageSet, val_fraction: float = VAL_FRACTION, *, needs: str = "labels",
                  max_region_pixels: int | None = None, whole: bool = True,
                  max_regions: int | None = None) -> Split:
    """Hold out whole images when there are enough, else whole planes, else regions.

    Parameters
    ----------
    val_fraction
        Share of the annotated images (planes, pixels) to hold out.
    needs
        ``"labels"``: only annotated content counts (and is held out);
        ``"image"`` / ``"target"``: every image (with a target) counts
        (self-supervised tasks, restoration).
    max_region_pixels
        Regions mode without annotations: the most pixels held out per plane.
    whole
        ``False``: never hold out whole images or planes, only regions (a
        self-supervised task learns the very images it will be applied to).
    max_regions
        Regions mode: hold out regions in at most this many planes, evenly spread.

    See the module notes for the rules.
    """
    usable = [i for i in range(len(ds)) if _usable(ds, i, needs)]
    marked = [i for i, s in enumerate(ds.samples) if s.split == "val"]
    if marked:
        if not [i for i in usable if i not in marked]:
            raise InputError("every usable image is marked for validation; mark at least one for training")
        return Split("images", [HeldOut(i, None, full_box(ds.layouts[i])) for i in marked])
    if val_fraction <= 0 or not usable:
        return Split("none")
    candidates = [i for i in usable if ds.samples[i].split != "train"]
    if whole and len(usable) >= MIN_WHOLE and candidates:
        k = min(max(1, int(round(val_fraction * len(usable)))), len(candidates), len(usable) - 1)
        picks = spread(candidates, k)
        return Split("images", [HeldOut(i, None, full_box(ds.layouts[i])) for i in picks])
    planes = [(i, p) for i in usable for p in range(ds.n_planes(i)) if _plane_usable(ds, i, p, needs)]
    cand_planes = [(i, p) for i, p in planes if i in candidates]
    if whole and len(planes) >= MIN_WHOLE and cand_planes:
        k = min(max(1, int(round(val_fraction * len(planes)))), len(cand_planes), len(planes) - 1)
        return Split("planes", [HeldOut(i, p, full_box(ds.layouts[i])) for i, p in spread(cand_planes, k)])
    if max_regions is not None and len(cand_planes) > max_regions:
        cand_planes = spread(cand_planes, max_regions)
    held = []
    for i, p in cand_planes:
        box = _slab(ds, i, p, val_fraction) if needs == "labels" else \
            corner_box(ds.layouts[i].spatial_shape, val_fraction, max_region_pixels)
        if box is not None:
            held.append(HeldOut(i, p, box))
    return Split("regions" if held else "none", held)


def _usable(ds: ImageSet, i: int, needs: str) -> bool:
    s = ds.samples[i]
    if needs == "labels":
        return ds.annotated_pixels(i) > 0
    if needs == "target":
        return s.target is not None
    return True


def _plane_usable(ds: ImageSet, i: int, p: int, needs: str) -> bool:
    if needs != "labels":
        return True
    stats = ds.label_stats(i)
    return stats is not None and bool(stats.grid[p].any())


def _slab(ds: ImageSet, i: int, plane: int, fraction: float) -> tuple[slice, ...] | None:
    """The far end of the longest axis, holding about ``fraction`` of the plane's annotations.

    Planes up to :data:`EXACT_SLAB_PIXELS` are cut exactly as
    :func:`~.patches.split_validation` cuts them; bigger ones at a cell border of
    the annotation grid (their annotations are not read again).
    """
    stats = ds.label_stats(i)
    assert stats is not None
    spatial = ds.layouts[i].spatial_shape
    if int(np.prod(spatial)) <= EXACT_SLAB_PIXELS:
        annotated = ds.read_labels(i, plane, full_box(ds.layouts[i])) > 0
        regions = split_validation(annotated[None], fraction)
        return regions[0].box if regions else None
    axis = int(np.argmax(spatial))
    grid = stats.grid[plane]
    marginal = grid.sum(axis=tuple(d for d in range(grid.ndim) if d != axis))
    total = int(marginal.sum())
    if total < MIN_REGION_PIXELS:
        return None
    tail = np.cumsum(marginal[::-1])[::-1]  # annotated pixels from cell j to the end
    ok = [j for j in range(1, len(tail)) if 0 < tail[j] < total]
    if not ok:
        return None
    j = min(ok, key=lambda j: abs(tail[j] - fraction * total))
    box = list(full_box(ds.layouts[i]))
    box[axis] = slice(j * stats.cell[axis], spatial[axis])
    return tuple(box)


def spread(items: list, k: int) -> list:
    """``k`` items evenly spread over the list, first and last avoided (as ``split_validation``)."""
    idx = np.unique(np.linspace(0, len(items) - 1, k + 2)[1:-1].round().astype(int))
    return [items[j] for j in idx]


def corner_box(spatial: tuple[int, ...], fraction: float, max_pixels: int | None) -> tuple[slice, ...] | None:
    """A box in the far corner holding about ``fraction`` of the plane (at most ``max_pixels``, half the plane)."""
    size = int(np.prod(spatial))
    if size < 4096:
        return None
    want = min(fraction * size, 0.5 * size, max_pixels or size)
    sides = [0] * len(spatial)
    remaining = want
    for j, d in enumerate(np.argsort(spatial)):
        side = int(round(remaining ** (1.0 / (len(spatial) - j))))
        sides[d] = int(min(spatial[d], max(8, side)))
        remaining /= sides[d]
    return tuple(slice(s - b, s) for s, b in zip(spatial, sides))
