"""Scale-out on dask.distributed: a folder of images, or the blocks of one huge image, on a cluster.

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

from ..data.zarrio import is_zarr_path
from ..errors import BioimgError, InputError
from ..events import Notice, PredictProgress
from ..settings.declare import declared
from ..settings.defaults import OVERLAP
from ..settings.predict import PredictConfig
from .runner import reports_time

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".npy")
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


def _worker_threads() -> int:
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


def output_path(image: Path, out_dir: Path) -> Path:
    """Where a folder prediction writes the result of ``image``: same stem, TIFF (zarr for zarr inputs)."""
    name = image.name
    if is_zarr_path(image):
        return out_dir / name
    stem = name[: -len(image.suffix)] if image.suffix else name
    return out_dir / f"{stem}.tif"


def list_images(folder: Path) -> tuple[list[Path], list[str]]:
    """Images in a folder (not recursive, sorted by name) and the names of the other files skipped.

    The data sets' rules (:func:`~..data.pairing.list_images`): TIFF, PNG/JPEG, NPY
    files and zarr folders. Two images with one name (``a.tif`` and ``a.png``) are
    refused, naming them: their results would overwrite each other.
    """
    from ..data.pairing import image_stem, listed
    from ..data.pairing import list_images as images_in

    found, skipped = images_in(folder)
    stems: dict[str, list[str]] = {}
    for p in found:
        stems.setdefault(image_stem(p).lower(), []).append(p.name)
    same = [" and ".join(names) for names in stems.values() if len(names) > 1]
    if same:
        raise InputError(f"{folder}: images with the same name would write the same result file: {listed(same)}; "
                         "rename or move one of each (nothing was written)")
    return found, skipped


def predict_file(model_path: str, image_path: str, out_path: str, options: dict) -> dict:
    """One image on a worker: read, predict (in memory or block by block), write. Returns a summary.

    User errors come back as ``{"error": message}`` so one bad file does not
    stop the others.
    """
    from ..control import drain
    from ..data.io import read_image, write_image
    from ..runtime.fast import configure_threads
    from .predict import predict

    configure_threads(_worker_threads())
    opts = dict(options)
    device = opts.pop("device", "auto")
    try:
        loaded = worker_model(model_path, device)
        if is_zarr_path(image_path) or is_zarr_path(out_path):
            result = drain(predict(loaded, image_path, opts.pop("axes", None), out=out_path, **opts))
        else:
            image, hint = read_image(image_path)
            result = drain(predict(loaded, image, opts.pop("axes", None), axes_hint=hint, **opts))
            write_image(out_path, np.asarray(result))
    except BioimgError as err:
        return {"image": image_path, "error": str(err)}
    return {"image": image_path, "out": out_path, "shape": list(result.shape), "dtype": str(result.dtype)}


@reports_time
def predict_folder(model_path: str | os.PathLike, folder: str | os.PathLike, out_dir: str | os.PathLike,
                   client=None, **options) -> Generator[PredictProgress | Notice, None, list[dict]]:
    """Predict every image of ``folder`` into ``out_dir``, one dask task per image.

    ``options`` go to :func:`.predict.predict` (``tile``, ``overlap``,
    ``batch_size``, ``axes``, ``device``, ``block``...). Yields progress per
    image and a :class:`Notice` per failed image; returns the summaries.
    """
    from distributed import as_completed

    PredictConfig.of(**{k: v for k, v in options.items() if k in declared(PredictConfig)})  # before any task
    images, skipped = list_images(Path(folder))
    if skipped:
        yield Notice(f"ignored {len(skipped)} file(s) that are not images: {', '.join(skipped[:8])}"
                     + (f" and {len(skipped) - 8} more" if len(skipped) > 8 else ""), "info")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client())
        futures = [client.submit(predict_file, str(model_path), str(p), str(output_path(p, out_dir)), options,
                                 pure=False, key=f"predict-{i}-{p.name}") for i, p in enumerate(images)]
        results = []
        for done, fut in enumerate(as_completed(futures), 1):
            res = fut.result()
            results.append(res)
            if "error" in res:
                yield Notice(f"{Path(res['image']).name}: {res['error']}")
            yield PredictProgress(done, len(images), "images")
    return sorted(results, key=lambda r: r["image"])


# ---------------------------------------------------------------- one huge image, its blocks as tasks

def _block_task(model_path: str, device: str, plan, source_path: str, out_path: str, indices: list[int],
                amp: bool, compile: bool, tta: bool):
    """Run a run of consecutive blocks on a worker (sharing a tile cache); return their ids and cut count."""
    from ..control import drain
    from ..data.zarrio import open_output, opened_image
    from ..runtime.fast import configure_threads
    from .blocks import TileUse, finish_block, read_block
    from .runner import model_fn
    from .tiling import blend_tiles

    configure_threads(_worker_threads())
    loaded = worker_model(model_path, device)
    out = open_output(out_path, mode="r+")
    fn = model_fn(loaded, amp, tta, compile=compile)
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


@reports_time
def predict_image_distributed(model_path: str | os.PathLike, image_path: str | os.PathLike,
                              out: str | os.PathLike, client, *, axes: str | None = None,
                              tile=None, overlap: float = OVERLAP, batch_size: int | None = None, device: str = "auto",
                              block=None, label_margin: int | None = None, amp: bool = True,
                              compile: bool = False, tta: bool = False, blocks_per_task: int = 4
                              ) -> Generator[PredictProgress | Notice, None, Any]:
    """Predict one image block by block with the blocks spread over a dask cluster.

    Planning (layout, normalisation percentiles) happens here; each task runs
    ``blocks_per_task`` consecutive blocks and writes their output chunks
    straight into the zarr store at ``out`` (via a temporary sibling renamed at
    the end). Returns the output zarr array.
    """
    from distributed import as_completed

    from ..formats.loading import load_model
    from .blocks import ResultStore, cut_notice
    from .plan import make_plan
    from .runner import opened_source, prepare

    loaded = load_model(model_path, "cpu")
    with opened_source(image_path) as (source, hint, scale):  # planning reads a subsample for the percentiles
        inp = prepare(loaded, source, axes, axes_hint=hint, tile=tile, overlap=overlap, batch_size=batch_size,
                      read=False)
        plan = make_plan(loaded, inp, overlap=overlap, block=block, label_margin=label_margin)
    yield from inp.notices
    with ResultStore(out) as store:
        store.create(plan, scale)
        groups = [list(range(i, min(i + blocks_per_task, len(plan.blocks))))
                  for i in range(0, len(plan.blocks), blocks_per_task)]
        plan_f = client.scatter(plan, broadcast=True)
        futures = [client.submit(_block_task, str(model_path), device, plan_f, str(image_path), str(store.tmp), g,
                                 amp, compile, tta, pure=False) for g in groups]
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
