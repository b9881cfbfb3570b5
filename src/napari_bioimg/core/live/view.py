"""What a live preview covers: the user's view as a sample and a spatial box, and back."""

from __future__ import annotations

import numpy as np

from .edits import sample_boxes

#: Largest view predicted (pixels); a bigger view is previewed around its centre.
MAX_VIEW_PIXELS = 1 << 20


def view_box(layout, view: tuple[slice, ...] | None, default: int) -> tuple[int, tuple[slice, ...]]:
    """The sample and spatial box to preview: the user's ``view`` (a box over the image's axes without C),
    or sample ``default`` whole."""
    whole = tuple(slice(0, n) for n in layout.spatial_shape)
    if view is None:
        return default, whole
    try:
        sample, box = sample_boxes(layout, view)[0]
    except (ValueError, IndexError):
        return default, whole
    box = tuple(slice(max(0, b.start), min(n, b.stop)) for b, n in zip(box, layout.spatial_shape))
    if any(b.stop <= b.start for b in box):
        return sample, whole
    size = np.prod([b.stop - b.start for b in box])
    if size > MAX_VIEW_PIXELS:  # zoomed far out: the centre of the view
        shrink = (MAX_VIEW_PIXELS / size) ** (1 / len(box))
        box = tuple(_shrunk(b, shrink) for b in box)
    return int(sample), box


def _shrunk(b: slice, factor: float) -> slice:
    size = max(1, int((b.stop - b.start) * factor))
    centre = (b.start + b.stop) // 2
    return slice(centre - size // 2, centre - size // 2 + size)


def user_box(layout, n: int, spatial: tuple[slice, ...]) -> tuple[slice, ...]:
    """A sample number and a spatial box -> the box over the image's axes without C."""
    index = dict(zip(layout.batch_axes, layout.sample_index(n)))
    index.update({a: b for a, b in zip(layout.spatial_axes, spatial)})
    return tuple(index[a] if isinstance(index[a], slice) else slice(index[a], index[a] + 1)
                 for a in layout.output_axes)


def crop(data: np.ndarray, box: tuple[slice, ...], inner: tuple[slice, ...]) -> np.ndarray | None:
    """The part of ``data`` (covering spatial ``box``) inside ``inner``, ``None`` unless ``box`` holds it whole."""
    if any(i.start < b.start or i.stop > b.stop for i, b in zip(inner, box)):
        return None
    return data[tuple(slice(i.start - b.start, i.stop - b.start) for i, b in zip(inner, box))]
