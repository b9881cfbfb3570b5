"""Which sample a training run previews, and a preview's layout (the user's axes)."""

from __future__ import annotations

import numpy as np


def flat_index(index, batch_shape: tuple[int, ...], n: int) -> int | None:
    if index is None:
        return None
    if isinstance(index, (tuple, list)):
        index = tuple(int(i) for i in index)[-len(batch_shape):] if batch_shape else ()
        if len(index) != len(batch_shape):
            return 0
        index = int(np.ravel_multi_index(tuple(np.clip(index, 0, np.array(batch_shape) - 1)), batch_shape)) if batch_shape else 0
    return int(np.clip(int(index), 0, n - 1))


def set_index(index, ds) -> tuple[int, int] | None:
    """A data set's preview: image ``index`` (plane 0) or ``(image, plane)``, clipped to the set."""
    if index is None:
        return None
    i, plane = (tuple(int(v) for v in index) + (0,))[:2] if isinstance(index, (tuple, list)) else (int(index), 0)
    i = int(np.clip(i, 0, len(ds) - 1))
    return i, int(np.clip(plane, 0, ds.n_planes(i) - 1))


def image_sample_layout(data: np.ndarray, layout) -> np.ndarray:
    """``(C, *spatial)`` result of one sample -> that sample's axes in the user's layout (C only if it has one)."""
    if "C" not in layout.axes:
        return data[0]
    src = "C" + layout.spatial_axes
    dst = "".join(a for a in layout.axes if a in src)
    return np.transpose(data, [src.index(a) for a in dst])

