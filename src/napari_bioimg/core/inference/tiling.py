"""Tiled inference with overlap and smooth (Gaussian) blending, for 2D and 3D.

Tiles overlap; each tile's output is weighted by a Gaussian window that falls off
towards the tile's edges, where a convolutional network sees zero padding instead
of real context, and the weighted sum is normalised. The result has no seams.

The tile positions form a :class:`TileGrid` fixed by the whole image's size, so a
block of a huge image (see :mod:`.lazy`) can run only the tiles that touch it and
get exactly the values the whole-image pass would give there.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Sequence

import numpy as np
import torch

from ..events import PredictProgress
from ..settings.defaults import OVERLAP


def per_dim(value: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    """An int or a per-dimension sequence -> a tuple of ``ndim`` ints."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * ndim
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * ndim
    if len(value) != ndim:
        raise ValueError(f"expected 1 or {ndim} values, got {len(value)}")
    return value


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


def fit_tile(tile: int | tuple[int, ...], spatial: tuple[int, ...], divisor: int | tuple[int, ...]) -> tuple[int, ...]:
    """Tile size per dim: no larger than the (padded) image, a multiple of ``divisor`` (per dim or one int)."""
    tile = per_dim(tile, len(spatial))
    div = per_dim(divisor, len(spatial))
    out = []
    for t, s, d in zip(tile, spatial, div):
        t = max(d, (int(t) // d) * d)
        s_pad = int(np.ceil(s / d)) * d
        out.append(min(t, s_pad))
    return tuple(out)


class TileGrid:
    """Tile positions and blending window for an image of spatial size ``spatial``.

    An image smaller than one tile along a dim is reflect-padded to the tile
    (``padded``); all positions are in padded coordinates.
    """

    def __init__(self, spatial: tuple[int, ...], tile: int | tuple[int, ...], overlap: float,
                 divisor: int | tuple[int, ...]):
        self.spatial = tuple(int(s) for s in spatial)
        self.tsize = fit_tile(tile, self.spatial, divisor)
        self.padded = tuple(max(s, t) for s, t in zip(self.spatial, self.tsize))
        ov = [int(round(overlap * t)) for t in self.tsize]
        self.starts = [tile_starts(p, t, o) for p, t, o in zip(self.padded, self.tsize, ov)]
        self.window = blend_window(self.tsize, tuple(len(s) == 1 for s in self.starts))

    def positions(self, box: tuple[slice, ...] | None = None) -> list[tuple[int, ...]]:
        """Start corners of the tiles that overlap ``box`` (all tiles when ``None``)."""
        if box is None:
            return list(itertools.product(*self.starts))
        per = [[s for s in starts if s < b.stop and s + t > b.start]
               for starts, t, b in zip(self.starts, self.tsize, box)]
        return list(itertools.product(*per))

    def region(self, positions: list[tuple[int, ...]]) -> tuple[slice, ...]:
        """Bounding box (padded coordinates) of the given tiles."""
        arr = np.asarray(positions)
        return tuple(slice(int(arr[:, d].min()), int(arr[:, d].max()) + t) for d, t in enumerate(self.tsize))

    def pad(self, image: np.ndarray, region: tuple[slice, ...]) -> np.ndarray:
        """Pad a read of ``region`` clipped to the image (``(C, *clipped)``) out to the region."""
        pad = [(0, max(0, r.stop - s)) for r, s in zip(region, self.spatial)]
        if not any(p[1] for p in pad):
            return image
        got = image.shape[1:]
        mode = "reflect" if all(p[1] < g for p, g in zip(pad, got)) else "symmetric"
        return np.pad(image, [(0, 0), *pad], mode=mode)


class TileCache:
    """Tile outputs kept between neighbouring blocks of one image, so no tile runs twice.

    Blocks are processed in raster order; a tile that reaches into a later block
    is stored here and reused there (and dropped with :meth:`drop` once no later
    block needs it). Bounded by ``max_bytes``: when full, new tiles are not kept
    (``refused``) and are simply computed again where they are needed.
    """

    def __init__(self, max_bytes: int = 256 << 20):
        self.max_bytes = int(max_bytes)
        self.items: dict[tuple[int, ...], np.ndarray] = {}
        self.nbytes = 0
        self.hits = 0
        self.refused = 0

    def get(self, pos: tuple[int, ...]) -> np.ndarray | None:
        y = self.items.get(pos)
        if y is not None:
            self.hits += 1
        return y

    def drop(self, done: Callable[[tuple[int, ...]], bool]) -> None:
        """Forget the tiles for which ``done(position)`` is true (no later block needs them)."""
        for pos in [p for p in self.items if done(p)]:
            self.nbytes -= self.items.pop(pos).nbytes

    def put(self, pos: tuple[int, ...], y: np.ndarray) -> None:
        if pos in self.items:
            return
        if self.nbytes + y.nbytes > self.max_bytes:
            # full: keep what is already held (in raster order it is needed sooner); this tile runs again later
            self.refused += 1
            return
        self.items[pos] = y
        self.nbytes += y.nbytes


def blend_tiles(
    fn: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    origin: tuple[int, ...],
    grid: TileGrid,
    positions: list[tuple[int, ...]],
    out_channels: int,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    stop: Callable[[], bool] | None = None,
    cache: TileCache | None = None,
    keep: Callable[[tuple[int, ...]], bool] | None = None,
) -> Generator[PredictProgress, None, np.ndarray | None]:
    """Run ``fn`` on the tiles at ``positions`` of ``image`` (a region starting at ``origin``) and blend.

    Returns ``(K, *image.shape[1:])`` float32, normalised where tiles cover it.
    With a ``cache``, tiles already computed for a neighbouring block are reused
    and those for which ``keep(position)`` is true are stored for later blocks.
    On CUDA the next batch is copied to the GPU on a side stream while the
    current one computes, and results come back through pinned memory while the
    CPU blends the previous batch.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    region_shape = image.shape[1:]
    out = np.zeros((out_channels, *region_shape), dtype=np.float32)
    weight = np.zeros(region_shape, dtype=np.float32)
    window = grid.window
    total = len(positions)
    done = 0

    def box(pos):
        return tuple(slice(a - o, a - o + t) for a, o, t in zip(pos, origin, grid.tsize))

    def add(pos, yy: np.ndarray) -> None:
        bx = box(pos)
        out[(slice(None), *bx)] += yy * window
        weight[bx] += window

    todo = []
    for pos in positions:
        hit = cache.get(pos) if cache is not None else None
        if hit is None:
            todo.append(pos)
        else:
            add(pos, hit)
            done += 1
    copy_stream = torch.cuda.Stream(device) if cuda else None
    pending = None

    def accumulate(item) -> None:
        chunk, y, event = item
        if event is not None:
            event.synchronize()
        y = y.numpy()
        for pos, yy in zip(chunk, y):
            add(pos, yy)
            if cache is not None and (keep is None or keep(pos)):
                cache.put(pos, yy.copy())

    for b0 in range(0, len(todo), batch_size):
        if stop is not None and stop():
            return None
        chunk = todo[b0 : b0 + batch_size]
        host = torch.from_numpy(np.stack([image[(slice(None), *box(p))] for p in chunk]).astype(np.float32, copy=False))
        with torch.inference_mode():
            if cuda:
                host = host.pin_memory()
                with torch.cuda.stream(copy_stream):
                    xb = host.to(device, non_blocking=True)
                torch.cuda.current_stream(device).wait_stream(copy_stream)
                xb.record_stream(torch.cuda.current_stream(device))
                y = fn(xb).float()
                y_host = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
                y_host.copy_(y, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
                item = (chunk, y_host, event)
            else:
                item = (chunk, fn(host).float().contiguous(), None)
        if pending is not None:  # blend the previous batch while this one runs on the GPU
            accumulate(pending)
            done += len(pending[0])
            yield PredictProgress(done, total)
        pending = item
    if pending is not None:
        accumulate(pending)
    yield PredictProgress(total, total)
    np.divide(out, weight, out=out, where=weight > 0)
    return out


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    out_channels: int,
    tile: int | tuple[int, ...] = 256,
    overlap: float = OVERLAP,
    divisor: int | tuple[int, ...] = 8,
    batch_size: int = 4,
    device: torch.device | str = "cpu",
    stop: Callable[[], bool] | None = None,
) -> Generator[PredictProgress, None, np.ndarray | None]:
    """Apply ``fn`` to ``image`` ``(C, *spatial)`` tile by tile; return ``(K, *spatial)`` float32.

    ``fn`` maps a batch ``(B, C, *tile)`` to ``(B, K, *tile)`` (activation included).
    Yields :class:`PredictProgress` after each batch; returns ``None`` if ``stop()``
    turns true.
    """
    spatial = image.shape[1:]
    grid = TileGrid(spatial, tile, overlap, divisor)
    region = tuple(slice(0, p) for p in grid.padded)
    padded = grid.pad(image, region)
    out = yield from blend_tiles(fn, padded, (0,) * len(spatial), grid, grid.positions(), out_channels,
                                 batch_size, device, stop)
    if out is None:
        return None
    crop = tuple(slice(0, s) for s in spatial)
    return np.ascontiguousarray(out[(slice(None), *crop)])
