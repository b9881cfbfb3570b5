"""Bounded-memory prediction of images larger than RAM, block by block into a zarr store.

How it works
------------
* The image (zarr, OME-Zarr, a TIFF through tifffile's zarr interface, a dask or
  memory-mapped array) is cut into *blocks* aligned with the output's zarr chunks
  (:mod:`.plan`). Memory depends on the block size, never on the image size.
* All blocks share one :class:`~.tiling.TileGrid` laid over the whole image. A
  block runs (and blends) only the tiles that touch it, so its pixels get exactly
  the values the whole-image pass gives: no seams, no halo guesswork. Tiles that
  reach into a later block are kept in a bounded :class:`~.tiling.TileCache` and
  not run twice (:class:`TileUse`).
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
  only when complete (:class:`ResultStore`), so a stopped or failed run never
  leaves half a result where a good one was, nor an empty temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..control import Control
from ..data.axes import Layout
from ..data.zarrio import create_output, open_output
from ..events import Notice, PredictProgress
from ..formats.checkpoint import LoadedModel
from ..settings.predict import PredictConfig
from .plan import Block, LazyPlan, _index, make_plan, read_input, write_region
from .runner import model_fn, prepare
from .source import PredictSource
from .tiling import TileCache, blend_tiles

#: Cap on tiles kept for later blocks: about one row of border tiles of a 16k-wide image (3 classes);
#: wider images recompute the tiles beyond it (a few percent more work) instead of holding more memory.
CACHE_BYTES = 64 << 20


# ---------------------------------------------------------------- one block

@dataclass
class BlockInput:
    """A block's normalised input: the region its tiles cover, read from the image."""

    block: Block
    label_box: tuple[slice, ...]
    region: tuple[slice, ...]
    positions: list[tuple[int, ...]]
    image: np.ndarray


def read_block(plan: LazyPlan, source: Any, block: Block) -> BlockInput:
    """Read (and normalise) the input region the block's tiles cover."""
    grid = plan.grid
    label_box = plan.label_box(block)
    positions = grid.positions(label_box)
    region = grid.region(positions)
    clipped = tuple(slice(r.start, min(r.stop, s)) for r, s in zip(region, grid.spatial))
    image = grid.pad(read_input(source, plan, block.sample, clipped), region)
    return BlockInput(block, label_box, region, positions, image)


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


def finish_block(plan: LazyPlan, task: Any, meta: dict, prep: BlockInput, probs: np.ndarray, out: Any):
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


# ---------------------------------------------------------------- the result store and the generator

class ResultStore:
    """Where a block-by-block result goes: a temporary sibling of ``out``, renamed over it when complete.

    With no ``out`` the result gets a new temporary folder (``napari-bioimg-*``).
    Used as a context manager: leaving it without :meth:`commit` (a stop, an
    error, a closed generator) removes the partial store and the temporary folder
    made for it.
    """

    def __init__(self, out: str | os.PathLike | None):
        self.folder = Path(tempfile.mkdtemp(prefix="napari-bioimg-")) if out is None else None
        self.final = self.folder / "prediction.zarr" if self.folder is not None else Path(out)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.final.with_name(f".{self.final.name}.partial-{os.getpid()}")
        if self.final.name.lower().endswith(".ome.zarr"):
            tmp = tmp.with_name(tmp.name + ".ome.zarr")
        shutil.rmtree(tmp, ignore_errors=True)
        self.tmp = tmp
        self.committed = False

    def create(self, plan: LazyPlan, scale: list[float] | None = None):
        """The empty output array, in the temporary store."""
        return create_output(self.tmp, plan.out_shape, plan.out_chunks, np.dtype(plan.out_dtype), plan.out_axes,
                             _out_scale(scale, plan.layout, plan.out_axes))

    def commit(self):
        """Move the complete result into place (replacing an older result at ``out``); return it, read-only."""
        if self.final.exists():
            shutil.rmtree(self.final) if self.final.is_dir() else self.final.unlink()
        os.replace(self.tmp, self.final)
        self.committed = True
        return open_output(self.final)

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> bool:
        if not self.committed:
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
        return False


def cut_notice(plan: LazyPlan, cut: int) -> Notice:
    """The warning for ``cut`` objects that may be split at block borders."""
    return Notice(f"{cut} object(s) reach beyond the {plan.margin[0]}-pixel label margin and may be split "
                  "at block borders; predict again with a larger label margin")


def run_blocks(loaded: LoadedModel, source: PredictSource, config: PredictConfig, *, out: str | os.PathLike | None = None,
               control: Control | None = None) -> Generator[PredictProgress | Notice, None, Any]:
    """Predict an image of any size with bounded memory; return the result as a zarr array.

    ``source`` is opened lazily (a path: zarr, OME-Zarr, TIFF, NPY); the result goes
    to ``out`` (``.zarr`` or ``.ome.zarr``), or a temporary folder when ``None``. Of
    ``config``, ``block`` is the spatial block size (rounded to the output chunks;
    memory grows with it) and ``label_margin`` the context around each block for
    labelling objects that cross its border (default: about two object diameters).

    Yields :class:`PredictProgress` (tiles, then blocks relabelled) and
    :class:`Notice`; returns the output zarr array (opened read-only), or ``None``
    when stopped.
    """
    with source.opened() as opened:
        inp = prepare(loaded, opened, config, read=False)
        yield from inp.notices
        plan = make_plan(loaded, inp, config)
        stop = (lambda: control.stop_requested) if control is not None else None
        with ResultStore(out) as store:
            result = store.create(plan, inp.scale)
            fn = model_fn(loaded, config.amp, config.tta, compile=config.compile)
            done = yield from _run_blocks(plan, loaded, inp.source, result, fn, stop)
            if done is None:
                return None
            all_ids, cut = done
            if cut:
                yield cut_notice(plan, cut)
            if plan.instance:
                sorted_ids = np.unique(np.concatenate(all_ids)) if all_ids else np.zeros(0, np.uint64)
                for i, b in enumerate(plan.blocks):
                    if stop is not None and stop():
                        return None
                    relabel_block(plan, result, b, sorted_ids)
                    yield PredictProgress(i + 1, len(plan.blocks), "relabel")
            return store.commit()


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
        ahead = pool.submit(read_block, plan, source, blocks[0])
        for i, b in enumerate(blocks):
            prep = ahead.result()
            if i + 1 < len(blocks):
                ahead = pool.submit(read_block, plan, source, blocks[i + 1])
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
