"""Prediction as a generator: tiled, stoppable, for 2D/3D with leading T/Z and C axes.

:func:`predict` is the one entry point, the door: it takes the image as a
:class:`~.source.PredictSource` (an array, a lazy array, a path or layer data, with
what is known about it) and the options as one :class:`~..settings.predict.PredictConfig`,
checks the options once, and picks one runner (:func:`choose_runner`):

* **in memory** (:func:`run_in_memory`, here): small arrays, tile by tile, a numpy result;
* **blocks** (:func:`.blocks.run_blocks`): lazy arrays, files, big images, zarr outputs, block by block;
* **distributed** (:func:`.distributed.run_distributed`): the blocks of one image on a dask cluster;
* **items** (:func:`run_items`): tasks that run their model on their own items (object classification).

Each runner takes the loaded model, the source and the configuration, and prepares
its own model input (:func:`.runner.prepare`).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import fields, replace
from enum import Enum
from typing import Any

import numpy as np

from ..control import Control, drain
from ..errors import InputError
from ..events import Notice, PredictProgress
from ..formats.checkpoint import LoadedModel
from ..formats.loading import load_model
from ..settings.declare import declared
from ..settings.predict import PredictConfig
from .runner import ModelInput, model_fn, prepare, reports_time, working_bytes
from .scale import adapt_input
from .source import Kind, PredictSource
from .tiling import tiled_apply

#: Above this estimated working set (input + outputs as float32), prediction goes block by block.
LAZY_BYTES = 1 << 30


class Runner(Enum):
    """Where a prediction runs (see the module)."""

    MEMORY = "in memory"
    BLOCKS = "blocks"
    DISTRIBUTED = "distributed"
    ITEMS = "items"


@reports_time
def predict(
    model: LoadedModel | str | os.PathLike | dict,
    image: PredictSource | Any,
    config: PredictConfig | None = None,
    *,
    out: str | os.PathLike | None = None,
    lazy: bool | None = None,
    class_image: bool = False,
    control: Control | None = None,
    device: str = "auto",
    client: Any = None,
) -> Generator[PredictProgress | Notice, None, Any]:
    """Predict ``image`` with a trained model.

    Parameters
    ----------
    model
        A loaded model, a model file, a built-in (``builtin:NAME``), a checkpoint dict
        or a bioimage.io package (loaded on ``device``).
    image
        A numpy, zarr or dask array, a napari multiscale list, a path (``.tif``,
        ``.png``, ``.npy``, ``.zarr``), or a :class:`~.source.PredictSource` saying
        also its axes, RGB, the object diameter or the objects to classify.
    config
        How it is predicted (tile, overlap, batch, block, label margin, AMP, compile,
        TTA); the declared defaults when ``None``. A refused value raises a
        :class:`~..errors.ConfigError` naming the setting, before anything is read.
    out
        Where a block-by-block result is written (``.zarr`` / ``.ome.zarr``): giving it
        asks for that runner; a temporary folder when ``None``.
    lazy
        ``True`` asks for a block-by-block result, ``False`` for an in-memory one (a
        path is then read whole, unless it would not fit: an :class:`InputError` about
        ``out``); ``None`` lets the engine decide (:func:`choose_runner`).
    class_image
        Classification: a label image of predicted classes as well.
    control
        Stops the prediction between two batches (the result is then ``None``).
    client
        A ``distributed.Client``: the image's blocks run on its cluster (``model``
        and ``image`` must then be paths the workers can read).

    Yields :class:`PredictProgress` (done / total, elapsed seconds, ETA) and
    :class:`Notice`; returns the result in the image's layout, or ``None`` if
    stopped: in memory a numpy array (labels without the channel axis for
    segmentation; for image tasks float32 of the image's shape, in its intensity
    range, NaN where the image was NaN/inf), block by block a zarr array, for
    classification a :class:`~.tasks.classify.ClassPrediction`.
    """
    config = (config or PredictConfig()).validate()
    source = PredictSource.of(image)
    loaded = None
    if client is None:  # a cluster's workers load the model themselves
        loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    runner = choose_runner(loaded, source, out=out, lazy=lazy, client=client)
    if runner is Runner.DISTRIBUTED:
        from .distributed import run_distributed

        return (yield from run_distributed(model, source, config, out=out, client=client, device=device))
    if runner is Runner.ITEMS:
        return (yield from run_items(loaded, source, config, control=control, class_image=class_image))
    if source.labels is not None:
        raise InputError(f"task {loaded.task.name!r} predicts from the image alone; do not pass labels")
    if runner is Runner.BLOCKS:
        from .blocks import run_blocks

        if source.diameter is not None:
            yield Notice("the object diameter applies to images predicted in memory; this one is predicted block "
                         "by block at the model's own scale", "warning")
        return (yield from run_blocks(loaded, source, config, out=out, control=control))
    return (yield from run_in_memory(loaded, source, config, control=control))


def choose_runner(loaded: LoadedModel | None, source: PredictSource, *, out: Any = None, lazy: bool | None = None,
                  client: Any = None) -> Runner:
    """The runner for ``source``: decided here, once.

    A cluster (``client``) runs blocks on it (``loaded`` is then not needed). Tasks that run their model on their own
    items go to :attr:`Runner.ITEMS`. Otherwise ``lazy`` decides when given; else a
    zarr ``out``, a path, a lazy array (opened lazily on purpose: its result is lazy
    too) or an array whose working set exceeds :data:`LAZY_BYTES` goes block by block.
    Image tasks map their output to each image's intensity range, which the block
    runner does not know for an in-memory array: theirs go block by block only when
    asked to (a zarr ``out``, a path, ``lazy=True``).
    """
    if client is not None:
        return Runner.DISTRIBUTED
    if loaded.task.predicts_items:
        return Runner.ITEMS
    if lazy is None:
        big = source.kind is not Kind.ARRAY or working_bytes(tuple(source.data.shape), loaded) > LAZY_BYTES
        lazy = out is not None or source.kind is Kind.FILE or (big and loaded.task.output_kind != "image")
    return Runner.BLOCKS if lazy else Runner.MEMORY


def run_items(loaded: LoadedModel, source: PredictSource, config: PredictConfig, *, control: Control | None = None,
              class_image: bool = False):
    """The task predicts its own items (object classification: ``source.labels`` are the objects)."""
    source = source.read()
    inp = prepare(loaded, source, config)
    yield from inp.notices
    return (yield from loaded.task.predict_direct(loaded, inp, labels=source.labels, batch_size=config.batch_size,
                                                  control=control, amp=config.amp, class_image=class_image,
                                                  tta=config.tta))


def run_in_memory(loaded: LoadedModel, source: PredictSource, config: PredictConfig, *,
                  control: Control | None = None):
    """An image in memory (a path read whole), zoomed to the model's object size when a diameter is given."""
    source = source.in_memory(lambda shape: _fits(shape, loaded, source))
    image, axes, rgb, rescaled, notices = adapt_input(loaded, source.data, source.axes, diameter=source.diameter,
                                                      rgb=source.rgb, axes_hint=source.hint)
    yield from notices
    inp = prepare(loaded, replace(source, data=image, axes=axes, rgb=rgb), config)
    yield from inp.notices
    result = yield from _predict_in_memory(loaded, inp, config, control)
    return rescaled.back(result) if rescaled is not None else result


def _fits(shape: tuple[int, ...], loaded: LoadedModel, source: PredictSource) -> None:
    """Refuse to read a file whole for an in-memory result when it would not fit."""
    need = working_bytes(shape, loaded)
    if need > LAZY_BYTES:
        raise InputError(f"must be a zarr folder (e.g. result.zarr) for {source.path.name}: predicting it in "
                         f"memory would need about {need / 2**30:.1f} GiB, a zarr result is written block "
                         "by block", field="out")


def _predict_in_memory(loaded: LoadedModel, inp: ModelInput, config: PredictConfig, control: Control | None):
    """Every sample (frame, slice) of an in-memory image tile by tile; the result in the image's layout."""
    task = loaded.task
    fn = model_fn(loaded, config.amp, config.tta, compile=config.compile)
    stop = (lambda: control.stop_requested) if control is not None else None
    results = []
    n = inp.x.shape[0]
    offset = 0
    link = links_slices(loaded, inp.layout) and n > 1
    for i in range(n):
        out = yield from _progress_offset(
            tiled_apply(fn, inp.x[i], loaded.out_channels, inp.tile, config.overlap, loaded.size_divisors, inp.batch_size,
                        loaded.device, stop),
            i, n,
        )
        if out is None:
            return None
        if link:  # a 2D model's slices of a Z stack: post-processed together below, as 3D objects
            results.append(out)
            continue
        res = task.postprocess(out, inp.meta)
        if task.output_kind == "image" and inp.n_nonfinite:
            res[~np.isfinite(inp.raw[i])] = np.nan
        if task.instance_labels and loaded.meta.get("unique_ids", True) and n > 1 and res.max():
            res = res.astype(np.uint32)
            res[res > 0] += offset  # keep object ids unique across frames / slices
            offset = int(res.max())
        results.append(res)
    stacked = task.postprocess_volume(np.stack(results, axis=1), inp.meta) if link else np.stack(results)
    channels = stacked.ndim == inp.x.ndim  # image tasks keep a channel axis
    if channels and "C" not in inp.layout.axes and stacked.shape[1] == 1:
        stacked, channels = stacked[:, 0], False  # single-channel image: same shape as the input
    if task.output_kind == "labels":
        from ..tasks.segmentation import label_dtype

        stacked = stacked.astype(label_dtype(int(stacked.max()) if stacked.size else 0))
    return inp.layout.from_canonical(stacked, channels=channels)


def links_slices(loaded: LoadedModel, layout) -> bool:
    """Whether a 2D instance model's results on the slices of a Z stack are linked into 3D objects
    (``link_slices`` in the model's meta turns it off: then every slice has its own objects)."""
    return (loaded.task.instance_labels and layout.spatial_dims == 2 and layout.batch_axes == "Z"
            and hasattr(loaded.task, "postprocess_volume") and bool(loaded.meta.get("link_slices", True)))


def _progress_offset(gen, index: int, n: int):
    """Re-yield a per-sample tiling generator's progress as whole-image progress."""
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            return stop.value
        yield PredictProgress(index * ev.total + ev.done, n * ev.total, "tiles")


def predict_sync(model, image, axes: str | None = None, callback=None, config: PredictConfig | None = None,
                 **options) -> Any:
    """Run :func:`predict` to the end (for scripts and tests); ``callback`` sees each event.

    For short scripts, the keywords may be spelt out: those naming a setting
    (``tile=64``, ``tta=True``) change ``config``, those naming what a
    :class:`~.source.PredictSource` knows (``rgb``, ``diameter``, ``labels``) go with
    the image and its ``axes``; the rest go to :func:`predict` (``out``, ``lazy``,
    ``class_image``, ``control``, ``device``).
    """
    settings = {k: options.pop(k) for k in list(options) if k in declared(PredictConfig)}
    about = {k: options.pop(k) for k in list(options) if k in {f.name for f in fields(PredictSource)}}
    if settings:
        config = replace(config or PredictConfig(), **{k: v for k, v in settings.items() if v is not None})
    return drain(predict(model, PredictSource.of(image, axes, **about), config, **options), callback)
