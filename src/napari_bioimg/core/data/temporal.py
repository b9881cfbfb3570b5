"""Temporal context: feed neighbouring time points to a 2D model as extra channels.

For a time-lapse (axes with ``T``) predicted frame by frame, a model can see frames
``t-k .. t+k`` stacked along the channel axis (frame order, then the image's own
channels). At the first and last frames a missing neighbour ``t+d`` is taken from
the other side, ``t-d``, so that no neighbour repeats frame ``t`` itself (a
blind-spot denoiser would otherwise see the very pixel it must predict). The number
``k`` is stored in the model file, so prediction stacks frames the same way
training did.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..settings.defaults import MAX_CONTEXT
from .axes import Layout


def check_context(k: int, layout: Layout) -> int:
    """Validate a temporal context ``k`` for this layout (needs a T axis when ``k > 0``)."""
    k = int(k)
    if not 0 <= k <= MAX_CONTEXT:
        raise InputError(f"temporal context must be between 0 and {MAX_CONTEXT} frames, got {k}")
    if k and "T" not in layout.batch_axes:
        raise InputError(
            f"temporal context needs a time axis T predicted frame by frame, but the axes are {layout.axes} "
            f"(model dims {layout.spatial_dims}); give axes such as 'TYX' or set the context to 0"
        )
    return k


def context_frames(t: int, n_frames: int, k: int) -> list[int]:
    """Frame indices stacked for frame ``t``: ``t-k .. t+k``, never ``t`` again if the stack has 2+ frames.

    A neighbour outside the stack is mirrored about ``t`` (``t+d`` -> ``t-d``); if
    that is outside too, the nearest frame other than ``t`` is used.
    """
    frames = []
    for d in range(-k, k + 1):
        f = t + d
        if d and not 0 <= f < n_frames:
            f = t - d
        if d and not 0 <= f < n_frames:
            f = min(max(t + d, 0), n_frames - 1)
            if f == t and n_frames > 1:
                f = t + 1 if t + 1 < n_frames else t - 1
        frames.append(f)
    return frames


def stack_context(x: np.ndarray, layout: Layout, k: int) -> np.ndarray:
    """``(N, C, *spatial)`` -> ``(N, C * (2k + 1), *spatial)`` with neighbouring frames as channels."""
    if k == 0:
        return x
    check_context(k, layout)
    bshape = layout.batch_shape
    ti = layout.batch_axes.index("T")
    xb = x.reshape(bshape + x.shape[1:])
    n_frames = bshape[ti]
    parts = [np.take(xb, [context_frames(t, n_frames, k)[j] for t in range(n_frames)], axis=ti)
             for j in range(2 * k + 1)]
    out = np.concatenate(parts, axis=len(bshape))
    return out.reshape((x.shape[0], -1) + x.shape[2:])
