"""Prediction as a generator: tiled, stoppable, for 2D/3D with leading T/Z and C axes."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

import numpy as np

from ..control import Control, drain
from ..data.axes import make_layout
from ..data.normalize import count_nonfinite
from ..data.temporal import check_context, stack_context
from ..data.zarrio import first_level
from ..errors import InputError
from ..events import Notice, PredictProgress
from ..formats.checkpoint import LoadedModel
from ..formats.loading import load_model
from .runner import DEFAULT_TILE, model_fn, working_bytes
from .tiling import tiled_apply

#: Above this estimated working set (input + outputs as float32), prediction goes block by block.
LAZY_BYTES = 1 << 30


def predict(
    model: LoadedModel | str | os.PathLike | dict,
    image: Any,
    axes: str | None = None,
    *,
    tile: int | tuple[int, ...] | None = None,
    overlap: float = 0.25,
    batch_size: int = 4,
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
) -> Generator[PredictProgress | Notice, None, Any]:
    """Predict ``image`` with a trained model.

    Yields :class:`PredictProgress` (tiles done / total) and :class:`Notice`; returns
    the result in the image's layout, or ``None`` if stopped: labels without the
    channel axis for segmentation tasks; for image tasks (denoise, restore, ...)
    float32 of the image's shape (channel axis kept), in its intensity range, NaN
    where the image was NaN/inf.

    Tasks that run their model on their own items (``Task.direct_model``, e.g.
    object classification) delegate here to ``Task.predict_direct`` and return its
    result (for classification an :class:`~.tasks.classify.ClassPrediction`):
    ``labels`` gives the objects to classify and ``class_image`` asks for a label
    image of predicted classes as well.

    Small in-memory images are predicted in memory and give a numpy array. Lazy
    (dask, zarr) images, images that do not fit comfortably (estimated working set
    above :data:`LAZY_BYTES`), or any
    call with a zarr ``out`` path or ``lazy=True``, go block by block through
    :func:`.lazy.predict_lazy` with bounded memory, and the result is a zarr
    array (written to ``out``, or to a temporary folder). ``image`` may be a
    numpy, zarr or dask array, a napari multiscale list, or a path for the lazy path.
    """
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    if loaded.task.direct_model:
        return (yield from loaded.task.predict_direct(
            loaded, image, labels=labels, axes=axes, rgb=rgb, axes_hint=axes_hint, batch_size=batch_size,
            control=control, amp=amp, class_image=class_image, tta=tta))
    if labels is not None:
        raise InputError(f"task {loaded.task.name!r} predicts from the image alone; do not pass labels")
    if not 0 <= overlap < 1:
        raise InputError(f"overlap must be a fraction in [0, 1), got {overlap}")
    image = first_level(image)
    if lazy is None:
        # image tasks map their output to each image's intensity range, which the block path does not
        # know yet: they go block by block only when asked to (a zarr ``out`` or ``lazy=True``).
        # A lazy input (dask, zarr) was opened lazily on purpose: its labels are computed lazily too.
        path = isinstance(image, (str, os.PathLike))
        big = path or not isinstance(image, np.ndarray) or working_bytes(tuple(image.shape), loaded) > LAZY_BYTES
        lazy = out is not None or path or (big and loaded.task.output_kind != "image")
    if lazy:
        from .blocks import predict_lazy

        return (yield from predict_lazy(loaded, image, axes, out=out, tile=tile, overlap=overlap,
                                        batch_size=batch_size, control=control, rgb=rgb, axes_hint=axes_hint,
                                        amp=amp, block=block, label_margin=label_margin, compile=compile,
                                        tta=tta))
    image = np.asarray(image)
    if axes is None and loaded.spatial_dims == 2 and image.ndim == len(loaded.axes) and "Z" not in loaded.axes:
        axes = loaded.axes  # same layout as the training image
    layout = make_layout(image.shape, axes, loaded.spatial_dims, rgb=rgb, hint=axes_hint)
    if loaded.spatial_dims == 2 and "Z" in layout.axes:
        yield Notice(f"the model is 2D: the {layout.axes} image is predicted slice by slice along Z", "info")
    context = check_context(loaded.temporal_context, layout)
    if layout.n_channels * (2 * context + 1) != loaded.in_channels:
        raise InputError(
            f"the model expects {loaded.in_channels // (2 * context + 1)} channel(s) but the image has "
            f"{layout.n_channels} (axes {layout.axes}); check the axes or pick another image"
        )
    x = layout.to_canonical(image)
    image_task = loaded.task.output_kind == "image"
    bad = count_nonfinite(x)
    if bad:
        kept = "; they stay NaN in the result" if image_task else ""
        yield Notice(f"{bad} NaN/inf pixel(s) were treated as the image's low value{kept}")
    if hasattr(loaded.normalizer, "ranges"):
        ranges = loaded.normalizer.ranges(x)
        xn = loaded.normalizer.apply(x, ranges=ranges)
        # image tasks map their output back to this image's intensities and dtype range
        meta = dict(loaded.meta, intensity_low=ranges[0], intensity_high=ranges[1], source_dtype=image.dtype.str)
    else:  # an imported package's own pre-processing
        xn = loaded.normalizer.apply(x)
        meta = dict(loaded.meta)
    xn = stack_context(xn, layout, context)
    tile = tile or getattr(loaded.model, "preferred_tile", None) or DEFAULT_TILE[loaded.spatial_dims]
    fn = model_fn(loaded, amp, tta, compile=compile)
    stop = (lambda: control.stop_requested) if control is not None else None
    results = []
    n = xn.shape[0]
    offset = 0
    for i in range(n):
        out = yield from _progress_offset(
            tiled_apply(fn, xn[i], loaded.out_channels, tile, overlap, loaded.size_divisors, batch_size,
                        loaded.device, stop),
            i, n,
        )
        if out is None:
            return None
        res = loaded.task.postprocess(out, meta)
        if image_task and bad:
            res[~np.isfinite(x[i])] = np.nan
        if loaded.task.instance_labels and loaded.meta.get("unique_ids", True) and n > 1 and res.max():
            res = res.astype(np.uint32)
            res[res > 0] += offset  # keep object ids unique across frames / slices
            offset = int(res.max())
        results.append(res)
    stacked = np.stack(results)
    channels = stacked.ndim == xn.ndim  # image tasks keep a channel axis
    if channels and "C" not in layout.axes and stacked.shape[1] == 1:
        stacked, channels = stacked[:, 0], False  # single-channel image: same shape as the input
    if loaded.task.output_kind == "labels":
        from ..tasks.segmentation import label_dtype

        stacked = stacked.astype(label_dtype(int(stacked.max()) if stacked.size else 0))
    out = layout.from_canonical(stacked, channels=channels)
    return out


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
