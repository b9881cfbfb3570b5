"""Scale-out on dask.distributed: the blocks of one huge image on a cluster (a folder of images: :mod:`.folder`).

The same code runs on a laptop (a ``LocalCluster``) and on a cluster (a scheduler
address). The model file travels by *path*: each worker loads it once and keeps it
(so the path must be readable from the workers, e.g. a shared filesystem), and so
do the images and the output folder.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..events import Notice, PredictProgress
from ..settings.predict import PredictConfig
from .source import PredictSource

#: Consecutive blocks one dask task runs (sharing a tile cache).
BLOCKS_PER_TASK = 4
_MODELS: dict[tuple, Any] = {}
_LOCK = threading.Lock()


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, n_workers: int | None = None, threads_per_worker: int = 1,
                processes: bool | None = None):
    """A ``distributed.Client`` for a ``with`` block: connected to ``scheduler``, or to a new ``LocalCluster``.

    The local cluster gets one worker per 4 cores by default (each worker's torch
    then uses its share of the cores), one thread each, no dashboard; it is shut
    down when the block ends. A single worker runs in this process (torch
    releases the GIL, and no second process has to import torch); several run
    as processes. A client to a remote scheduler is only closed.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("folders and --scheduler run on dask.distributed: pip install 'napari-bioimg[bigdata]'") \
            from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as err:
            raise InputError(f"cannot reach the dask scheduler at {scheduler}: {err}") from None
        try:
            yield client
        finally:
            client.close()
        return
    from ..runtime.fast import available_cores

    n_workers = n_workers or max(1, available_cores() // 4)
    processes = n_workers > 1 if processes is None else processes
    with LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def worker_threads() -> int:
    """Torch threads for one task: this machine's cores shared among the worker's threads."""
    from ..runtime.fast import available_cores

    try:
        from distributed import get_worker

        worker = get_worker()
        nthreads = int(getattr(getattr(worker, "state", worker), "nthreads", 1))
    except (ImportError, ValueError):  # not on a worker
        nthreads = 1
    return max(1, available_cores() // max(1, nthreads))


def worker_model(path: str, device: str = "auto"):
    """The model at ``path``, loaded once per worker process (reloaded if the file changes)."""
    from ..formats.loading import load_model

    key = (str(Path(path).resolve()), os.path.getmtime(path), device)
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = load_model(path, device)
        return _MODELS[key]


def _block_task(model_path: str, device: str, plan, source_path: str, out_path: str, indices: list[int],
                config: PredictConfig):
    """Run a run of consecutive blocks on a worker (sharing a tile cache); return their ids and cut count."""
    from ..control import drain
    from ..data.zarrio import open_output, opened_image
    from ..runtime.fast import configure_threads
    from .blocks import TileUse, finish_block, read_block
    from .runner import model_fn
    from .tiling import blend_tiles

    configure_threads(worker_threads())
    loaded = worker_model(model_path, device)
    out = open_output(out_path, mode="r+")
    fn = model_fn(loaded, config.amp, config.tta, compile=config.compile)
    ids, cut = [], 0
    blocks = [plan.blocks[i] for i in indices]
    use = TileUse(plan, blocks)
    with opened_image(source_path) as (source, _, _):
        for i, b in enumerate(blocks):
            prep = read_block(plan, source, b)
            probs = drain(blend_tiles(fn, prep.image, tuple(r.start for r in prep.region), plan.grid, prep.positions,
                                      plan.model_channels, plan.batch_size, loaded.device, None, use.cache,
                                      use.keep(i, b)))
            use.release(i, b)
            block_ids, n_cut = finish_block(plan, loaded.task, loaded.meta, prep, probs, out)
            if block_ids is not None:
                ids.append(block_ids)
            cut += n_cut
    return (np.unique(np.concatenate(ids)) if ids else None), cut, len(indices)


def _relabel_task(plan, out_path: str, indices: list[int], sorted_ids: np.ndarray) -> int:
    from ..data.zarrio import open_output
    from .blocks import relabel_block

    out = open_output(out_path, mode="r+")
    for i in indices:
        relabel_block(plan, out, plan.blocks[i], sorted_ids)
    return len(indices)


def run_distributed(model_path: str | os.PathLike, source: PredictSource, config: PredictConfig, *,
                    out: str | os.PathLike | None, client, device: str = "auto",
                    blocks_per_task: int | None = None
                    ) -> Generator[PredictProgress | Notice, None, Any]:
    """Predict one image block by block with the blocks spread over a dask cluster.

    The workers load the model from ``model_path`` and read the image from its path.
    Planning (layout, normalisation percentiles) happens here; each task runs
    ``blocks_per_task`` (:data:`BLOCKS_PER_TASK`) consecutive blocks and writes their output chunks
    straight into the zarr store at ``out`` (via a temporary sibling renamed at
    the end). Returns the output zarr array.
    """
    from distributed import as_completed

    from ..formats.loading import load_model
    from .blocks import ResultStore, cut_notice
    from .plan import make_plan
    from .runner import prepare

    if not isinstance(model_path, (str, os.PathLike)) or source.path is None:
        raise InputError("a cluster's workers read the model and the image from their files: give both as paths")
    blocks_per_task = blocks_per_task or BLOCKS_PER_TASK
    loaded = load_model(model_path, "cpu")
    with source.opened() as opened:  # planning reads a subsample for the percentiles
        inp = prepare(loaded, opened, config, read=False)
        plan = make_plan(loaded, inp, config)
    yield from inp.notices
    with ResultStore(out) as store:
        store.create(plan, inp.scale)
        groups = [list(range(i, min(i + blocks_per_task, len(plan.blocks))))
                  for i in range(0, len(plan.blocks), blocks_per_task)]
        plan_f = client.scatter(plan, broadcast=True)
        futures = [client.submit(_block_task, str(model_path), device, plan_f, str(source.path), str(store.tmp), g,
                                 config, pure=False) for g in groups]
        all_ids, cut, done = [], 0, 0
        for fut in as_completed(futures):
            ids, n_cut, n = fut.result()
            if ids is not None:
                all_ids.append(ids)
            cut += n_cut
            done += n
            yield PredictProgress(done, len(plan.blocks), "blocks")
        if cut:
            yield cut_notice(plan, cut)
        if plan.instance:
            sorted_ids = np.unique(np.concatenate(all_ids)) if all_ids else np.zeros(0, np.uint64)
            ids_f = client.scatter(sorted_ids, broadcast=True)
            futures = [client.submit(_relabel_task, plan_f, str(store.tmp), g, ids_f, pure=False) for g in groups]
            done = 0
            for fut in as_completed(futures):
                done += fut.result()
                yield PredictProgress(done, len(plan.blocks), "relabel")
        return store.commit()
