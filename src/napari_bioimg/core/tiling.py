"""Tiled inference with overlap and smooth (Gaussian) blending, for 2D and 3D.

Tiles overlap; each tile's output is weighted by a Gaussian window that falls off
towards the tile's edges, where a convolutional network sees zero padding instead
of real context, and the weighted sum is normalised. The result has no seams.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator

import numpy as np
import torch

from .events import PredictProgress


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``length`` with tiles of ``tile`` overlapping by at least ``overlap``."""
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def blend_window(tile: tuple[int, ...], single: tuple[bool, ...], sigma_fraction: float = 0.125) -> np.ndarray:
    """Separable Gaussian weights; flat along dims covered by a single tile."""
    w = np.ones((), dtype=np.float32)
    for size, flat in zip(tile, single):
        if flat:
            g = np.ones(size, dtype=np.float32)
        else:
            c = (size - 1) / 2
            g = np.exp(-0.5 * ((np.arange(size) - c) / (sigma_fraction * size)) ** 2).astype(np.float32)
            g = np.maximum(g, 1e-3)
        w = np.multiply.outer(w, g)
    return w


def fit_tile(tile: int | tuple[int, ...], spatial: tuple[int, ...], divisor: int) -> tuple[int, ...]:
    """Tile size per dim: no larger than the (padded) image, a multiple of ``divisor``."""
    tile = (tile,) * len(spatial) if isinstance(tile, int) else tuple(tile)
    out = []
    for t, s in zip(tile, spatial):
        t = max(divisor, (int(t) // divisor) * divisor)
        s_pad = int(np.ceil(s / divisor)) * divisor
        out.append(min(t, s_pad))
    return tuple(out)


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    out_channels: int,
    tile: int | tuple[int, ...] = 256,
    overlap: float = 0.25,
    divisor: int = 8,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    stop: Callable[[], bool] | None = None,
) -> Generator[PredictProgress, None, np.ndarray | None]:
    """Apply ``fn`` to ``image`` ``(C, *spatial)`` tile by tile; return ``(K, *spatial)`` float32.

    ``fn`` maps a batch ``(B, C, *tile)`` to ``(B, K, *tile)`` (activation included).
    Yields :class:`PredictProgress` after each batch; returns ``None`` if ``stop()``
    turns true.
    """
    device = torch.device(device)
    spatial = image.shape[1:]
    tsize = fit_tile(tile, spatial, divisor)
    # pad so that every dim is at least one tile (reflect where possible)
    pad = [(0, max(0, t - s)) for t, s in zip(tsize, spatial)]
    if any(p[1] for p in pad):
        mode = "reflect" if all(p[1] < s for p, s in zip(pad, spatial)) else "symmetric"
        image = np.pad(image, [(0, 0), *pad], mode=mode)
    padded = image.shape[1:]
    ov = [int(round(overlap * t)) for t in tsize]
    starts = [tile_starts(s, t, o) for s, t, o in zip(padded, tsize, ov)]
    window = blend_window(tsize, tuple(len(s) == 1 for s in starts))
    out = np.zeros((out_channels, *padded), dtype=np.float32)
    weight = np.zeros(padded, dtype=np.float32)
    positions = list(itertools.product(*starts))
    total = len(positions)
    pin = device.type == "cuda"
    for b0 in range(0, total, batch_size):
        if stop is not None and stop():
            return None
        chunk = positions[b0 : b0 + batch_size]
        boxes = [tuple(slice(a, a + t) for a, t in zip(pos, tsize)) for pos in chunk]
        batch = torch.from_numpy(np.stack([image[(slice(None), *bx)] for bx in boxes]).astype(np.float32, copy=False))
        if pin:
            batch = batch.pin_memory()
        with torch.inference_mode():
            y = fn(batch.to(device, non_blocking=True)).float().cpu().numpy()
        for bx, yy in zip(boxes, y):
            out[(slice(None), *bx)] += yy * window
            weight[bx] += window
        yield PredictProgress(min(b0 + batch_size, total), total)
    out /= weight
    crop = tuple(slice(0, s) for s in spatial)
    return np.ascontiguousarray(out[(slice(None), *crop)])
