"""Prediction as a generator: tiled, stoppable, for 2D/3D with leading T/Z and C axes.

:func:`predict` is the one entry point: it decides whether an image is predicted in
memory or block by block into a zarr store (:mod:`.blocks`), and hands tasks that
run their model on their own items (object classification) to the task.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from ..control import Control, drain
from ..data.io import read_image
from ..data.zarrio import first_level, is_zarr_path
from ..errors import InputError
from ..events import Notice, PredictProgress
from ..formats.checkpoint import LoadedModel
from ..formats.loading import load_model
from ..settings.defaults import OVERLAP
from ..settings.predict import PredictConfig
from .runner import ModelInput, model_fn, opened_source, prepare, reports_time, working_bytes
from .scale import adapt_input
from .tiling import tiled_apply

#: Above this estimated working set (input + outputs as float32), prediction goes block by block.
LAZY_BYTES = 1 << 30
#: Files whose size is known before reading them (opened lazily first).
LAZY_SUFFIXES = (".tif", ".tiff", ".npy")


@reports_time
def predict(
    model: LoadedModel | str | os.PathLike | dict,
    image: Any,
    axes: str | None = None,
    *,
    tile: int | tuple[int, ...] | None = None,
    overlap: float = OVERLAP,
    batch_size: int | None = None,
    device: str = "auto",
    control: Control | None = None,
    rgb: bool = False,
    axes_hint: str | None = None,
    amp: bool = True,
    out: str | os.PathLike | None = None,
    lazy: bool | None = None,
    block: int | tuple[int, ...] | None = None,
    label_margin: int | None = None,
    compile: bool = False,
    tta: bool = False,
    labels: Any = None,
    class_image: bool = False,
    diameter: float | str | None = None,
) -> Generator[PredictProgress | Notice, None, Any]:
    """Predict ``image`` with a trained model.

    Yields :class:`PredictProgress` (tiles done / total, elapsed seconds, ETA) and
    :class:`Notice`; returns the result in the image's layout, or ``None`` if
    stopped: labels without the channel axis for segmentation tasks; for image
    tasks (denoise, restore, ...) float32 of the image's shape (channel axis
    kept), in its intensity range, NaN where the image was NaN/inf.

    The options (``tile``, ``overlap``, ``batch_size``, ``block``, ``label_margin``, ``amp``, ``compile``,
    ``tta``) are declared in :class:`~..settings.predict.PredictConfig`, which checks them (a refused value
    raises a :class:`~..errors.ConfigError` naming the option).

    ``batch_size`` is the number of tiles (or items) per forward pass: ``None`` lets
    the engine choose (:data:`.runner.TILE_BATCH` tiles; for items, the task).

    Tasks that run their model on their own items (``Task.predicts_items``, e.g.
    object classification) delegate here to ``Task.predict_direct`` and return its
    result (for classification an :class:`~.tasks.classify.ClassPrediction`):
    ``labels`` gives the objects to classify and ``class_image`` asks for a label
    image of predicted classes as well.

    The engine decides where the work happens. Small in-memory images are
    predicted in memory and give a numpy array. Lazy (dask, zarr) images, images
    that do not fit comfortably (estimated working set above :data:`LAZY_BYTES`),
    paths, or any call with a zarr ``out`` path or ``lazy=True``, go block by block
    through :func:`.blocks.predict_lazy` with bounded memory, and the result is a
    zarr array (written to ``out``, or to a temporary folder). ``lazy=False`` asks
    for an in-memory result: a path is then read whole, unless it would not fit,
    which raises an :class:`InputError` about ``out`` (write a zarr store instead).
    ``image`` may be a numpy, zarr or dask array, a napari multiscale list, or a
    path (``.tif``, ``.png``, ``.npy``, ``.zarr``).

    ``diameter`` (pixels, or ``"auto"`` to estimate it from the image) is the size of
    the objects in the image: an in-memory image is zoomed to the model's object size
    and the result zoomed back (:mod:`.scale`); an RGB image given to a one-channel
    model is converted to grey, with a notice.
    """
    PredictConfig.of(tile=tile, overlap=overlap, batch_size=batch_size, block=block, label_margin=label_margin)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    path = isinstance(image, (str, os.PathLike))
    if loaded.task.predicts_items:
        if path:
            image, hint = read_image(image)
            axes_hint = axes_hint or hint
        inp = prepare(loaded, image, axes, rgb=rgb, axes_hint=axes_hint)
        yield from inp.notices
        return (yield from loaded.task.predict_direct(loaded, inp, labels=labels, batch_size=batch_size,
                                                      control=control, amp=amp, class_image=class_image, tta=tta))
    if labels is not None:
        raise InputError(f"task {loaded.task.name!r} predicts from the image alone; do not pass labels")
    if lazy is None:
        # image tasks map their output to each image's intensity range, which the block path does not
        # know yet: they go block by block only when asked to (a zarr ``out`` or ``lazy=True``).
        # A lazy input (dask, zarr) was opened lazily on purpose: its labels are computed lazily too.
        lazy = out is not None or path or (_big(first_level(image), loaded) and loaded.task.output_kind != "image")
    if lazy:
        from .blocks import predict_lazy

        if diameter is not None:
            yield Notice("the object diameter applies to images predicted in memory; this one is predicted block "
                         "by block at the model's own scale", "warning")
        return (yield from predict_lazy(loaded, image, axes, out=out, tile=tile, overlap=overlap,
                                        batch_size=batch_size, control=control, rgb=rgb, axes_hint=axes_hint,
                                        amp=amp, block=block, label_margin=label_margin, compile=compile,
                                        tta=tta))
    if path:
        image, hint = _read_whole(Path(image), loaded)
        axes_hint = axes_hint or hint
    image, axes, rgb, rescaled, notices = adapt_input(loaded, first_level(image), axes, diameter=diameter, rgb=rgb,
                                                      axes_hint=axes_hint)
    yield from notices
    inp = prepare(loaded, image, axes, rgb=rgb, axes_hint=axes_hint, tile=tile, overlap=overlap,
                  batch_size=batch_size)
    yield from inp.notices
    result = yield from _predict_in_memory(loaded, inp, overlap=overlap, control=control, amp=amp, compile=compile,
                                           tta=tta)
    return rescaled.back(result) if rescaled is not None else result


def _big(image: Any, loaded: LoadedModel) -> bool:
    """Whether an array is lazy (dask, zarr: opened lazily on purpose) or too big to predict in memory."""
    return not isinstance(image, np.ndarray) or working_bytes(tuple(image.shape), loaded) > LAZY_BYTES


def _read_whole(path: Path, loaded: LoadedModel) -> tuple[np.ndarray, str | None]:
    """Read an image file into memory for an in-memory result, refusing one that would not fit."""
    if is_zarr_path(path) or path.suffix.lower() in LAZY_SUFFIXES:
        with opened_source(path) as (source, hint, _):
            need = working_bytes(tuple(source.shape), loaded)
            if need > LAZY_BYTES:
                raise InputError(f"must be a zarr folder (e.g. result.zarr) for {path.name}: predicting it in "
                                 f"memory would need about {need / 2**30:.1f} GiB, a zarr result is written block "
                                 "by block", field="out")
            if is_zarr_path(path):
                return np.asarray(source[...]), hint
    return read_image(path)


def _predict_in_memory(loaded: LoadedModel, inp: ModelInput, *, overlap: float, control: Control | None,
                       amp: bool, compile: bool, tta: bool):
    """Every sample (frame, slice) of an in-memory image tile by tile; the result in the image's layout."""
    task = loaded.task
    fn = model_fn(loaded, amp, tta, compile=compile)
    stop = (lambda: control.stop_requested) if control is not None else None
    results = []
    n = inp.x.shape[0]
    offset = 0
    link = links_slices(loaded, inp.layout) and n > 1
    for i in range(n):
        out = yield from _progress_offset(
            tiled_apply(fn, inp.x[i], loaded.out_channels, inp.tile, overlap, loaded.size_divisors, inp.batch_size,
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


def predict_sync(model, image, axes: str | None = None, callback=None, **kwargs) -> np.ndarray | None:
    """Run :func:`predict` to the end (for scripts and tests); ``callback`` sees each event."""
    return drain(predict(model, image, axes, **kwargs), callback)
