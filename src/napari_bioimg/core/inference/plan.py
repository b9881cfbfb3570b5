"""Planning a block-by-block prediction: the blocks, the output store's layout, the normalisation.

A :class:`LazyPlan` holds everything needed to predict any block of an image, apart
from the model and the arrays, so it travels to dask workers (:mod:`.distributed`).
The helpers here move a block's pixels between the user's layout and the engine's
``(C, *spatial)``; :mod:`.blocks` runs the blocks.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ..data.axes import Layout
from ..data.normalize import MAX_PERCENTILE_SAMPLES, Normalizer
from ..data.temporal import context_frames
from ..data.zarrio import read
from ..errors import InputError
from ..formats.checkpoint import LoadedModel
from ..settings.defaults import BLOCK
from ..settings.predict import PredictConfig
from .runner import ModelInput
from .tiling import TileGrid

#: Output zarr chunk shape (blocks are multiples of it).
CHUNK = {2: (512, 512), 3: (32, 128, 128)}
SAMPLE_BLOCKS = 64


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
    return normalizer.percentiles_of([np.concatenate(vals) for vals in values])


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


def make_plan(loaded: LoadedModel, inp: ModelInput, config: PredictConfig) -> LazyPlan:
    """Lay out the blocks, the output's shape and chunks and the normalisation of a prepared lazy image
    (``config``'s overlap, block size and label margin, checked by the caller)."""
    task, layout, source = loaded.task, inp.layout, inp.source
    if task.output_kind not in ("labels", "image"):
        raise InputError(f"task {task.name!r} gives per-object results and cannot be predicted block by block")
    nd = layout.spatial_dims
    sp = layout.spatial_shape
    block, label_margin = config.block, config.label_margin
    req = BLOCK[nd] if block is None else ((block,) * nd if isinstance(block, int) else tuple(block))
    if len(req) != nd or min(int(b) for b in req) < 1:
        raise InputError(f"must be {nd} positive value(s) for this {nd}D model, got {block}", field="block")
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
    tile = inp.tile
    return LazyPlan(layout.axes, layout.shape, nd, oaxes, out_shape, out_chunks, dtype.str, channels, k,
                    tuple(tile) if not isinstance(tile, int) else (tile,) * nd, float(config.overlap),
                    loaded.size_divisors, int(inp.batch_size), norm.to_dict(), inp.context, (margin,) * nd, instance,
                    blocks, np.dtype(source.dtype).str if hasattr(source, "dtype") else "")
