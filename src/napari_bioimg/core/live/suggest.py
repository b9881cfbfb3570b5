"""Where to annotate next: the most uncertain regions that hold no annotation yet."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class Region:
    """A suggested box (pixel coordinates of the image's spatial dims) and its mean uncertainty."""

    box: tuple[slice, ...]
    score: float

    @property
    def centre(self) -> tuple[float, ...]:
        return tuple((s.start + s.stop - 1) / 2 for s in self.box)


def suggest_regions(uncertainty: np.ndarray, annotated: np.ndarray | None = None, *, size: int | tuple[int, ...] = 64,
                    n: int = 5, max_annotated: float = 0.02) -> list[Region]:
    """The ``n`` windows of ``size`` with the highest mean uncertainty, not overlapping each other,
    among those with at most ``max_annotated`` of their pixels already annotated.

    Parameters
    ----------
    uncertainty
        Per-pixel uncertainty (2D or 3D), e.g. :func:`.uncertainty.entropy_map`.
    annotated
        Boolean mask of annotated pixels (same shape), or ``None``.
    size
        Window side in pixels (one value, or one per dim; clipped to the image).
    n
        How many regions to return (fewer when the image has no room for more).
    max_annotated
        Windows with a larger annotated fraction are skipped: the user has been there.
    """
    u = np.nan_to_num(np.asarray(uncertainty, dtype=np.float32))
    nd = u.ndim
    sizes = (size,) * nd if isinstance(size, (int, np.integer)) else tuple(size)
    sizes = tuple(max(1, min(int(s), d)) for s, d in zip(sizes, u.shape))
    mean_u = ndi.uniform_filter(u, sizes, mode="constant")
    valid = np.ones(u.shape, bool)
    if annotated is not None:
        frac = ndi.uniform_filter(np.asarray(annotated, dtype=np.float32), sizes, mode="constant")
        valid &= frac <= max_annotated
    # only centres whose window lies inside the image
    for axis, s in enumerate(sizes):
        lo, hi = s // 2, u.shape[axis] - (s - s // 2)
        idx = [slice(None)] * nd
        idx[axis] = slice(0, lo)
        valid[tuple(idx)] = False
        idx[axis] = slice(hi + 1, None)
        valid[tuple(idx)] = False
    score = np.where(valid, mean_u, -np.inf)
    regions: list[Region] = []
    for _ in range(n):
        flat = int(np.argmax(score))
        best = float(score.flat[flat])
        if not np.isfinite(best):
            break
        centre = np.unravel_index(flat, u.shape)
        box = tuple(slice(int(c) - s // 2, int(c) - s // 2 + s) for c, s in zip(centre, sizes))
        regions.append(Region(box, best))
        # windows overlapping this one are no longer candidates
        block = tuple(slice(max(0, b.start - s // 2), b.stop + s // 2) for b, s in zip(box, sizes))
        score[block] = -np.inf
    return regions
