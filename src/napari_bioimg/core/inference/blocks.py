"""Bounded-memory prediction of images larger than RAM, block by block into a zarr store.

How it works
------------
* The image (zarr, OME-Zarr, a TIFF through tifffile's zarr interface, a dask or
  memory-mapped array) is cut into *blocks* aligned with the output's zarr chunks.
  Memory depends on the block size, never on the image size.
* All blocks share one :class:`~.tiling.TileGrid` laid over the whole image. A
  block runs (and blends) only the tiles that touch it, so its pixels get exactly
  the values the whole-image pass gives: no seams, no halo guesswork. Tiles that
  reach into a later block are kept in a bounded :class:`~.tiling.TileCache` and
  not run twice.
* Normalisation percentiles are estimated once, on a subsample read block by
  block (exact when the image has at most 2 million pixels per channel).
* Instance labels: each block is post-processed with a margin of about two object
  diameters around it; every object gets the id ``1 + (global flat index of its
  first pixel)``, the same in every block that sees the whole object, so objects
  crossing block borders keep one id without any exchange between blocks. A last
  pass renumbers ids to ``1..n`` in that order. Objects larger than the margin may
  be split at block borders: a :class:`~.events.Notice` says so (raise
  ``label_margin``).
* The result is written to a temporary sibling folder and renamed over ``out``
  only when complete, so a stopped or failed run never leaves half a result where
  a good one was.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..control import Control
from ..data.axes import Layout, make_layout
from ..data.normalize import MAX_PERCENTILE_SAMPLES, Normalizer
from ..data.temporal import check_context, context_frames
from ..data.zarrio import create_output, first_level, is_lazy_array, open_image, open_output, read
from ..errors import InputError
from ..events import Notice, PredictProgress
from ..formats.checkpoint import LoadedModel
from ..formats.loading import load_model
from .tiling import TileCache, TileGrid, blend_tiles

#: Spatial block (= output chunk multiple) per model dimensionality.
BLOCK = {2: (2048, 2048), 3: (64, 256, 256)}
#: Output zarr chunk shape (blocks are multiples of it).
CHUNK = {2: (512, 512), 3: (32, 128, 128)}
SAMPLE_BLOCKS = 64
#: Cap on tiles kept for later blocks: about one row of border tiles of a 16k-wide image (3 classes);
#: wider images recompute the tiles beyond it (a few percent more work) instead of holding more memory.
CACHE_BYTES = 64 << 20


@dataclass(frozen=True)
class Block:
    """One unit of work: a sample (index along the batch axes) and a core box in its spatial dims."""

    sample: tuple[int, ...]
    core: tuple[slice, ...]


@dataclass
class LazyPlan:
    """Everything needed to predict any block, apart from the model and the arrays (picklable for dask)."""

    axes: str
    shape: tuple[int, ...]
    spatial_dims: int
    out_axes: str
    out_shape: tuple[int, ...]
    out_chunks: tuple[int, ...]
    out_dtype: str
    channels: bool
    model_channels: int
    tile: tuple[int, ...]
    overlap: float
    divisor: int | tuple[int, ...]
    batch_size: int
    normalizer: dict
    context: int
    margin: tuple[int, ...]
    instance: bool
    blocks: list[Block] = field(default_factory=list)
    source_dtype: str = ""
    """The image's dtype: image results are clipped to its range when it is an integer type."""

    def output_meta(self, meta: dict) -> dict:
        """Task meta plus what an image task's post-processing needs to map back to intensities."""
        return dict(meta, intensity_low=self.normalizer.get("low"), intensity_high=self.normalizer.get("high"),
                    source_dtype=self.source_dtype or None)

    @cached_property
    def layout(self) -> Layout:
        return Layout(self.axes, self.shape, self.spatial_dims)

    @cached_property
    def grid(self) -> TileGrid:
        return TileGrid(self.layout.spatial_shape, self.tile, self.overlap, self.divisor)

    @cached_property
    def norm(self) -> Normalizer:
        return Normalizer.from_dict(self.normalizer)

    def label_box(self, block: Block) -> tuple[slice, ...]:
        """The block's core grown by the label margin, clipped to the image."""
        sp = self.layout.spatial_shape
        return tuple(slice(max(0, c.start - m), min(s, c.stop + m)) for c, m, s in zip(block.core, self.margin, sp))

    def positions(self, block: Block) -> list[tuple[int, ...]]:
        return self.grid.positions(self.label_box(block))

    def sample_flat(self, block: Block) -> int:
        bs = self.layout.batch_shape
        return int(np.ravel_multi_index(block.sample, bs)) if bs else 0


# ---------------------------------------------------------------- layout helpers

def _index(axes: str, layout: Layout, sample: tuple[int, ...], box: tuple[slice, ...]):
    """Index into an array with ``axes`` for one sample and spatial box; also the axes it keeps."""
    idx: list[Any] = []
    for a in axes:
        if a in layout.batch_axes:
            idx.append(sample[layout.batch_axes.index(a)])
        elif a == "C":
            idx.append(slice(None))
        else:
            idx.append(box[layout.spatial_axes.index(a)])
    return tuple(idx), [a for a in axes if a not in layout.batch_axes]


def read_region(source: Any, layout: Layout, sample: tuple[int, ...], box: tuple[slice, ...]) -> np.ndarray:
    """``(C, *box)`` of one sample, in canonical order, in the source's dtype."""
    idx, kept = _index(layout.axes, layout, sample, box)
    arr = read(source, idx)
    target = (["C"] if "C" in kept else []) + list(layout.spatial_axes)
    arr = arr.transpose([kept.index(a) for a in target])
    return arr if "C" in kept else arr[None]


def output_axes(layout: Layout, channels: bool) -> str:
    """Axes of the result, as :meth:`Layout.from_canonical` lays it out."""
    if not channels:
        return layout.output_axes
    if "C" in layout.axes:
        return layout.axes
    oa = layout.output_axes
    return oa[: len(oa) - layout.spatial_dims] + "C" + layout.spatial_axes


def write_region(out: Any, plan: LazyPlan, block: Block, data: np.ndarray) -> None:
    """Write ``data`` (``(K, *core)`` or ``(*core)``) into the output array."""
    layout = plan.layout
    idx, kept = _index(plan.out_axes, layout, block.sample, block.core)
    src = (["C"] if plan.channels else []) + list(layout.spatial_axes)
    out[idx] = data.transpose([src.index(a) for a in kept])


def read_input(source: Any, plan: LazyPlan, sample: tuple[int, ...], box: tuple[slice, ...]) -> np.ndarray:
    """Normalised ``(C', *box)`` float32 for one sample, neighbouring frames stacked when ``context > 0``."""
    layout = plan.layout
    samples = [sample]
    if plan.context:
        ti = layout.batch_axes.index("T")
        frames = context_frames(sample[ti], layout.batch_shape[ti], plan.context)
        samples = [sample[:ti] + (f,) + sample[ti + 1 :] for f in frames]
    parts = [plan.norm.apply(read_region(source, layout, s, box)[None], refit=False)[0] for s in samples]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


# ---------------------------------------------------------------- planning

def _blocks(layout: Layout, block: tuple[int, ...]) -> list[Block]:
    sp = layout.spatial_shape
    ranges = [[slice(a, min(a + b, s)) for a in range(0, s, b)] for s, b in zip(sp, block)]
    samples = list(np.ndindex(*layout.batch_shape)) if layout.batch_axes else [()]
    return [Block(tuple(int(i) for i in smp), core) for smp in samples for core in itertools.product(*ranges)]


def estimate_percentiles(source: Any, layout: Layout, blocks: list[Block], normalizer: Normalizer,
                         max_values: int = MAX_PERCENTILE_SAMPLES, seed: int = 0) -> tuple[list, list]:
    """Per-channel percentiles from a subsample read block by block (all pixels when few enough)."""
    total = layout.n_samples * int(np.prod(layout.spatial_shape))
    nd = layout.spatial_dims
    if total <= max_values:
        chosen, stride = blocks, 1
    else:
        rng = np.random.default_rng(seed)
        chosen = [blocks[i] for i in sorted(rng.choice(len(blocks), min(SAMPLE_BLOCKS, len(blocks)), replace=False))]
        per_block = max(1, max_values // len(chosen))
        block_px = max(int(np.prod([c.stop - c.start for c in b.core])) for b in chosen)
        stride = max(1, math.ceil((block_px / per_block) ** (1 / nd)))
    values: list[list[np.ndarray]] = [[] for _ in range(layout.n_channels)]
    for b in chosen:
        x = read_region(source, layout, b.sample, b.core)[(slice(None),) + (slice(None, None, stride),) * nd]
        for c in range(x.shape[0]):
            values[c].append(x[c].ravel())
    lows, highs = [], []
    for c, vals in enumerate(values):
        v = np.concatenate(vals).astype(np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            raise InputError(f"channel {c} has no finite pixel values (all NaN or inf)")
        lo, hi = np.percentile(v, [normalizer.p_low, normalizer.p_high])
        lows.append(float(lo))
        highs.append(float(hi))
    return lows, highs


def default_margin(loaded: LoadedModel) -> int:
    """Label margin: about two object diameters (from the training annotations), at least 16 pixels."""
    area = float(loaded.meta.get("median_area", 0) or 0)
    if area <= 0:
        return 64
    if loaded.spatial_dims == 3:
        diameter = 2 * (3 * area / (4 * math.pi)) ** (1 / 3)
    else:
        diameter = 2 * math.sqrt(area / math.pi)
    return int(min(512, max(16, math.ceil(2 * diameter))))


def make_plan(loaded: LoadedModel, source: Any, layout: Layout, *, tile: int | tuple[int, ...], overlap: float,
              batch_size: int, block: int | tuple[int, ...] | None = None, label_margin: int | None = None) -> LazyPlan:
    """Check the model fits the image and lay out blocks, output shape and normalisation."""
    task = loaded.task
    if task.output_kind not in ("labels", "image"):
        raise InputError(f"task {task.name!r} gives per-object results and cannot be predicted block by block")
    context = check_context(loaded.temporal_context, layout)
    if layout.n_channels * (2 * context + 1) != loaded.in_channels:
        raise InputError(
            f"the model expects {loaded.in_channels} input channel(s) but the image has {layout.n_channels} "
            f"(axes {layout.axes}); check the axes or pick another image"
        )
    nd = layout.spatial_dims
    sp = layout.spatial_shape
    req = BLOCK[nd] if block is None else ((block,) * nd if isinstance(block, int) else tuple(block))
    if len(req) != nd or min(int(b) for b in req) < 1:
        raise InputError(f"block size {block} must be {nd} positive value(s) for this {nd}D model")
    chunk = tuple(min(c, int(b), s) for c, b, s in zip(CHUNK[nd], req, sp))
    # a block is a whole number of output chunks (unless one block spans the dim), so writers never share a chunk
    core = tuple(s if int(b) >= s else max(c, (int(b) // c) * c) for b, c, s in zip(req, chunk, sp))
    blocks = _blocks(layout, core)
    k = loaded.out_channels
    probe_shape = tuple(min(16, s) for s in sp)
    probe = np.asarray(task.postprocess(np.full((k, *probe_shape), 1.0 / k, np.float32), loaded.meta))
    channels = probe.ndim == nd + 1
    if channels and task.output_kind == "image" and "C" not in layout.axes and probe.shape[0] == 1:
        channels = False  # a single-channel image result has the image's own shape, as in memory
    instance = bool(getattr(task, "instance_labels", False))
    if instance:
        n_total = layout.n_samples * int(np.prod(sp))
        dtype = np.dtype(np.uint32 if n_total < 2**32 - 1 else np.uint64)
        margin = default_margin(loaded) if label_margin is None else int(label_margin)
    else:
        dtype, margin = probe.dtype, 0
    oaxes = output_axes(layout, channels)
    shape_of = dict(zip(layout.axes, layout.shape))
    if channels:
        shape_of["C"] = probe.shape[0]
    out_shape = tuple(shape_of[a] for a in oaxes)
    out_chunks = tuple(probe.shape[0] if a == "C" else chunk[layout.spatial_axes.index(a)]
                       if a in layout.spatial_axes else 1 for a in oaxes)
    norm = Normalizer.from_dict(loaded.normalizer.to_dict())
    if norm.mode == "per_image" or not norm.low:
        norm.low, norm.high = estimate_percentiles(source, layout, blocks, norm)
    norm.mode = "fixed"
    return LazyPlan(layout.axes, layout.shape, nd, oaxes, out_shape, out_chunks, dtype.str, channels, k,
                    tuple(tile) if not isinstance(tile, int) else (tile,) * nd, float(overlap),
                    loaded.size_divisors, int(batch_size), norm.to_dict(), context, (margin,) * nd, instance, blocks,
                    np.dtype(source.dtype).str if hasattr(source, "dtype") else "")


# ---------------------------------------------------------------- one block

@dataclass
class Prepared:
    block: Block
    label_box: tuple[slice, ...]
    region: tuple[slice, ...]
    positions: list[tuple[int, ...]]
    image: np.ndarray


def prepare(plan: LazyPlan, source: Any, block: Block) -> Prepared:
    """Read (and normalise) the input region the block's tiles cover."""
    grid = plan.grid
    label_box = plan.label_box(block)
    positions = grid.positions(label_box)
    region = grid.region(positions)
    clipped = tuple(slice(r.start, min(r.stop, s)) for r, s in zip(region, grid.spatial))
    image = grid.pad(read_input(source, plan, block.sample, clipped), region)
    return Prepared(block, label_box, region, positions, image)


def anchor_ids(labels: np.ndarray, box: tuple[slice, ...], sample_flat: int, plan: LazyPlan) -> np.ndarray:
    """Replace each object's id by ``1 + global flat index of its first pixel`` (raster order).

    A box's raster order is the image's raster order restricted to the box, so
    every block that sees the whole object picks the same first pixel.
    """
    ids, first = np.unique(labels.ravel(), return_index=True)
    keep = ids > 0
    ids, first = ids[keep], first[keep]
    out_dtype = np.dtype(plan.out_dtype)
    if ids.size == 0:
        return np.zeros(labels.shape, dtype=out_dtype)
    local = np.unravel_index(first, labels.shape)
    coords = [np.full(ids.size, sample_flat)] + [loc + b.start for loc, b in zip(local, box)]
    anchors = np.ravel_multi_index(coords, (plan.layout.n_samples,) + plan.layout.spatial_shape) + 1
    lut = np.zeros(int(ids.max()) + 1, dtype=out_dtype)
    lut[ids] = anchors
    return lut[labels]


def _cut_objects(labels: np.ndarray, box: tuple[slice, ...], inner: tuple[slice, ...], spatial) -> int:
    """Objects in the core that touch the margin's outer edge inside the image (maybe larger than the margin)."""
    edge = []
    for d, (b, s) in enumerate(zip(box, spatial)):
        if b.start > 0:
            edge.append(np.take(labels, 0, axis=d).ravel())
        if b.stop < s:
            edge.append(np.take(labels, -1, axis=d).ravel())
    if not edge:
        return 0
    touching = np.unique(np.concatenate(edge))
    return int(np.intersect1d(touching[touching > 0], np.unique(labels[inner])).size)


def finish_block(plan: LazyPlan, task: Any, meta: dict, prep: Prepared, probs: np.ndarray, out: Any):
    """Post-process a block's probabilities and write its core; return (ids in the core, cut objects)."""
    block, box, region = prep.block, prep.label_box, prep.region
    inside = tuple(slice(b.start - r.start, b.stop - r.start) for b, r in zip(box, region))
    res = np.asarray(task.postprocess(np.ascontiguousarray(probs[(slice(None), *inside)]), plan.output_meta(meta)))
    if not plan.channels and res.ndim == plan.spatial_dims + 1:
        res = res[0]  # single-channel image result
    inner = tuple(slice(c.start - b.start, c.stop - b.start) for c, b in zip(block.core, box))
    ids, cut = None, 0
    if plan.instance:
        res = anchor_ids(res, box, plan.sample_flat(block), plan)
        cut = _cut_objects(res, box, inner, plan.layout.spatial_shape) if any(plan.margin) else 0
        core = res[inner]
        ids = np.unique(core)
        ids = ids[ids > 0]
    else:
        core = res[(slice(None), *inner)] if plan.channels else res[inner]
        core = core.astype(plan.out_dtype, copy=False)
    write_region(out, plan, block, np.ascontiguousarray(core))
    return ids, cut


def relabel_block(plan: LazyPlan, out: Any, block: Block, sorted_ids: np.ndarray) -> None:
    """Rewrite a block's anchor ids as ``1..n`` (their rank among all ids)."""
    idx, _ = _index(plan.out_axes, plan.layout, block.sample, block.core)
    data = np.asarray(out[idx])
    nz = data > 0
    if nz.any():
        data[nz] = np.searchsorted(sorted_ids, data[nz]) + 1
        out[idx] = data


class TileUse:
    """The tile cache of a list of blocks processed in order, holding exactly the tiles a later block reuses.

    Records which block last needs each tile; a tile is kept only if a later block
    needs it and dropped as soon as its last block is done. Memory then stays at
    about one row of blocks' border tiles whatever the image size, and the cache
    is empty whenever a sample's last block is done (so samples never mix).
    """

    def __init__(self, plan: LazyPlan, blocks: list[Block], max_bytes: int = CACHE_BYTES):
        self.cache = TileCache(max_bytes)
        self.last: dict[tuple, int] = {}
        for i, b in enumerate(blocks):
            for pos in plan.positions(b):
                self.last[(b.sample, pos)] = i

    def keep(self, i: int, block: Block) -> Callable[[tuple[int, ...]], bool]:
        """For block ``i``: is this tile needed again by a later block?"""
        return lambda pos: self.last.get((block.sample, pos), -1) > i

    def release(self, i: int, block: Block) -> None:
        """Block ``i`` is done: drop the cached tiles no later block needs."""
        self.cache.drop(lambda pos: self.last.get((block.sample, pos), -1) <= i)


# ---------------------------------------------------------------- the generator

def temporary_sibling(out: str | os.PathLike | None) -> tuple[Path, Path]:
    """``(tmp, final)``: write into ``tmp``, rename to ``final`` when complete."""
    if out is None:
        final = Path(tempfile.mkdtemp(prefix="napari-bioimg-")) / "prediction.zarr"
    else:
        final = Path(out)
        final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    if final.suffix.lower() == ".zarr" and final.name.lower().endswith(".ome.zarr"):
        tmp = tmp.with_name(tmp.name + ".ome.zarr")
    return tmp, final


def commit(tmp: Path, final: Path) -> None:
    """Move a complete result into place (replacing an older result at ``final``)."""
    if final.exists():
        shutil.rmtree(final) if final.is_dir() else final.unlink()
    os.replace(tmp, final)


def predict_lazy(
    model: LoadedModel | str | os.PathLike | dict,
    image: Any,
    axes: str | None = None,
    *,
    out: str | os.PathLike | None = None,
    tile: int | tuple[int, ...] | None = None,
    overlap: float = 0.25,
    batch_size: int = 4,
    device: str = "auto",
    control: Control | None = None,
    rgb: bool = False,
    axes_hint: str | None = None,
    amp: bool = True,
    block: int | tuple[int, ...] | None = None,
    label_margin: int | None = None,
    compile: bool = False,
    scale: list[float] | None = None,
    tta: bool = False,
) -> Generator[PredictProgress | Notice, None, Any]:
    """Predict an image of any size with bounded memory; return the result as a zarr array.

    Parameters
    ----------
    image
        A zarr / dask / memory-mapped / numpy array, a napari multiscale list
        (its finest level), or a path (``.zarr``, ``.ome.zarr``, ``.tif``, ``.npy``).
    out
        Where to write the result (``.zarr`` or ``.ome.zarr``); a temporary
        folder when ``None``.
    block
        Spatial block size (rounded to the output chunks); memory grows with it.
    label_margin
        Instance tasks: context around each block for labelling objects that
        cross its border (default: about two object diameters).

    Yields :class:`PredictProgress` (tiles) and :class:`Notice`; returns the
    output zarr array (opened read-only), or ``None`` when stopped.
    """
    from .runner import DEFAULT_TILE, model_fn

    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    if not 0 <= overlap < 1:
        raise InputError(f"overlap must be a fraction in [0, 1), got {overlap}")
    meta_scale = scale
    if isinstance(image, (str, os.PathLike)):
        image, hint, meta = open_image(image)
        axes_hint = axes_hint or hint
        meta_scale = meta_scale or meta.get("scale")
    image = first_level(image)
    if not is_lazy_array(image):
        image = np.asarray(image)
    if axes is None and loaded.spatial_dims == 2 and image.ndim == len(loaded.axes) and "Z" not in loaded.axes:
        axes = loaded.axes
    layout = make_layout(tuple(image.shape), axes, loaded.spatial_dims, rgb=rgb, hint=axes_hint)
    if loaded.spatial_dims == 2 and "Z" in layout.axes:
        yield Notice(f"the model is 2D: the {layout.axes} image is predicted slice by slice along Z", "info")
    tile = tile or getattr(loaded.model, "preferred_tile", None) or DEFAULT_TILE[loaded.spatial_dims]
    plan = make_plan(loaded, image, layout, tile=tile, overlap=overlap,
                     batch_size=batch_size, block=block, label_margin=label_margin)
    tmp, final = temporary_sibling(out)
    stop = (lambda: control.stop_requested) if control is not None else None
    try:
        result = create_output(tmp, plan.out_shape, plan.out_chunks, np.dtype(plan.out_dtype), plan.out_axes,
                               _out_scale(meta_scale, layout, plan.out_axes))
        done = yield from _run_blocks(plan, loaded, image, result, model_fn(loaded, amp, tta, compile=compile), stop)
        if done is None:
            shutil.rmtree(tmp, ignore_errors=True)
            return None
        all_ids, cut = done
        if cut:
            yield Notice(f"{cut} object(s) reach beyond the {plan.margin[0]}-pixel label margin and may be split "
                         "at block borders; predict again with a larger label margin")
        if plan.instance:
            sorted_ids = np.unique(np.concatenate(all_ids)) if all_ids else np.zeros(0, np.uint64)
            for i, b in enumerate(plan.blocks):
                if stop is not None and stop():
                    shutil.rmtree(tmp, ignore_errors=True)
                    return None
                relabel_block(plan, result, b, sorted_ids)
                yield PredictProgress(i + 1, len(plan.blocks), "relabel")
        commit(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return open_output(final)


def _out_scale(scale, layout: Layout, out_axes: str):
    if not scale or len(scale) != len(layout.axes):
        return None
    of = dict(zip(layout.axes, scale))
    return [of.get(a, 1.0) for a in out_axes]


def _run_blocks(plan: LazyPlan, loaded: LoadedModel, source: Any, result: Any, fn, stop):
    """Blocks in raster order, reading the next block's input in a thread while this one computes."""
    blocks = plan.blocks
    total = sum(len(plan.positions(b)) for b in blocks)
    done_tiles = 0
    all_ids: list[np.ndarray] = []
    cut = 0
    use = TileUse(plan, blocks)
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(prepare, plan, source, blocks[0])
        for i, b in enumerate(blocks):
            prep = ahead.result()
            if i + 1 < len(blocks):
                ahead = pool.submit(prepare, plan, source, blocks[i + 1])
            gen = blend_tiles(fn, prep.image, tuple(r.start for r in prep.region), plan.grid, prep.positions,
                              plan.model_channels, plan.batch_size, loaded.device, stop, use.cache, use.keep(i, b))
            while True:
                try:
                    ev = next(gen)
                except StopIteration as s:
                    probs = s.value
                    break
                yield PredictProgress(done_tiles + ev.done, total, "tiles")
            if probs is None:
                return None
            done_tiles += len(prep.positions)
            use.release(i, b)
            ids, n_cut = finish_block(plan, loaded.task, loaded.meta, prep, probs, result)
            del probs, prep
            if ids is not None:
                all_ids.append(ids)
            cut += n_cut
    return all_ids, cut
