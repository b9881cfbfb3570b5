"""What every prediction runner shares: the image made ready for the model, the model as a batch function,
tile defaults, memory estimates and the progress clock.

Used by in-memory prediction (:mod:`.predict`), block-by-block prediction
(:mod:`.blocks`), the dask scale-out (:mod:`.distributed`), object and frame
classification (:meth:`~..tasks.classify.ClassifyTask.predict_direct`) and the
export's sample crop (:func:`~..formats.export.sample_input`).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from ..control import ActiveClock, run_clocked
from ..data.axes import Layout, make_layout
from ..data.normalize import count_nonfinite
from ..data.temporal import check_context, stack_context
from ..errors import InputError
from ..events import Notice, PredictProgress
from ..formats.checkpoint import LoadedModel
from ..runtime.device import autocast
from ..runtime.fast import inference_model, memory_format
from ..settings.defaults import TILE, TILE_BATCH
from ..settings.predict import PredictConfig
from .source import PredictSource

DEFAULT_TILE = TILE
FLIPS = ((), (-1,), (-2,), (-2, -1))


@dataclass
class ModelInput:
    """An image made ready for a model by :func:`prepare`: what every prediction path starts from."""

    source: Any
    """The image: a numpy array, or a lazy one (zarr, dask, memory map) that is read block by block."""
    layout: Layout
    context: int
    """Neighbouring frames stacked as channels on each side (the model's temporal context)."""
    tile: int | tuple[int, ...]
    """Tile size: the caller's, else the network's preferred one, else :data:`DEFAULT_TILE`."""
    batch_size: int = TILE_BATCH
    """Tiles per forward pass: the caller's, else :data:`TILE_BATCH`."""
    notices: list[Notice] = field(default_factory=list)
    scale: list[float] | None = None
    """Pixel sizes per axis, when an OME-Zarr path gave them."""
    raw: np.ndarray | None = None
    """In memory: the image as ``(N, C, *spatial)`` with its own values."""
    x: np.ndarray | None = None
    """In memory: the normalised model input ``(N, C', *spatial)`` float32, frames stacked as channels."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Task meta for post-processing, with the intensity range an image task maps its result back to."""
    n_nonfinite: int = 0
    """NaN/inf pixels of an in-memory image (read as its low value)."""


def prepare(loaded: LoadedModel, image: PredictSource | Any, config: PredictConfig | None = None, *,
            read: bool = True) -> ModelInput:
    """The image -> model input preamble every prediction path shares.

    Lays out the axes of ``image`` (a :class:`~.source.PredictSource`, or an array
    with guessed axes; the training image's axes when they fit and none are given),
    checks the channel count and temporal context against the model, picks the
    tile and batch sizes of ``config`` (checked by the caller) and, with ``read``, reads
    the image into memory, counts its NaN/inf pixels and normalises it (keeping the
    intensity range for image tasks). Lazy images (``read=False``) are normalised
    block by block (:mod:`.plan`).

    Raises
    ------
    InputError
        With one message per problem, the same on every path.
    """
    image = PredictSource.of(image)
    config = config or PredictConfig()
    source = image.data
    if read:
        source = np.asarray(source)
    axes = image.axes
    if axes is None and source.ndim == len(loaded.axes) and (loaded.spatial_dims == 3 or "Z" not in loaded.axes):
        axes = loaded.axes  # the training image's layout
    layout = make_layout(tuple(source.shape), axes, loaded.spatial_dims, rgb=image.rgb, hint=image.hint)
    notices = []
    if loaded.spatial_dims == 2 and "Z" in layout.axes:
        linked = (loaded.task.instance_labels and layout.batch_axes == "Z" and loaded.meta.get("link_slices", True))
        notices.append(Notice(f"the model is 2D: the {layout.axes} image is predicted slice by slice along Z"
                              + ("; objects are linked across slices into 3D objects" if linked else ""), "info"))
    context = check_context(loaded.temporal_context, layout)
    if layout.n_channels != loaded.image_channels:
        raise InputError(f"the model expects {loaded.image_channels} channel(s) but the image has {layout.n_channels} "
                         f"(axes {layout.axes}); check the axes or pick another image")
    tile = config.tile or loaded.protocol.preferred_tile or DEFAULT_TILE[loaded.spatial_dims]
    inp = ModelInput(source, layout, context, tile, config.batch_size or TILE_BATCH, notices, scale=image.scale,
                     meta=dict(loaded.meta))
    if read:
        _read(loaded, inp)
    return inp


def _read(loaded: LoadedModel, inp: ModelInput) -> None:
    """Fill in the in-memory parts of ``inp``: canonical image, NaN/inf count, normalised input."""
    x = inp.layout.to_canonical(inp.source)
    image_task = loaded.task.output_kind == "image"
    bad = count_nonfinite(x)
    if bad:
        kept = "; they stay NaN in the result" if image_task else ""
        inp.notices.append(Notice(f"{bad} NaN/inf pixel(s) were treated as the image's low value{kept}"))
    if hasattr(loaded.normalizer, "ranges"):
        ranges = loaded.normalizer.ranges(x)
        xn = loaded.normalizer.apply(x, ranges=ranges)
        # image tasks map their output back to this image's intensities and dtype range
        inp.meta.update(intensity_low=ranges[0], intensity_high=ranges[1], source_dtype=inp.source.dtype.str)
    else:  # an imported package's own pre-processing
        xn = loaded.normalizer.apply(x)
    inp.raw, inp.x, inp.n_nonfinite = x, stack_context(xn, inp.layout, inp.context), bad


def reports_time(generator_function: Callable[..., Generator]) -> Callable[..., Generator]:
    """Decorate a prediction generator so its :class:`PredictProgress` carry elapsed seconds and an ETA.

    The clock runs only while the generator runs (a paused consumer stops it);
    the ETA extrapolates the current stage from its progress so far.
    """

    @functools.wraps(generator_function)
    def timed(*args, **kwargs):
        clock = ActiveClock()
        events = run_clocked(generator_function(*args, **kwargs), clock)
        stage, stage_start, last = None, 0.0, 0.0
        while True:
            try:
                event = next(events)
            except StopIteration as stop:
                return stop.value
            if isinstance(event, PredictProgress):
                now = clock.elapsed()
                if event.stage != stage:
                    stage, stage_start = event.stage, last
                spent = now - stage_start
                eta = spent / event.done * (event.total - event.done) if event.done else None
                event, last = replace(event, elapsed=now, eta=eta), now
            yield event

    return timed


def model_fn(loaded: LoadedModel, amp: bool = True, tta: bool = False, *, fast: bool = True,
             compile: bool = False):
    """Batch -> activated outputs, using an inference-ready copy of the model.

    With ``fast`` the copy has batch-norm folded into the convolutions and uses
    channels-last memory where that is faster (:mod:`.fast`); ``compile`` adds
    ``torch.compile`` (falls back to eager with a warning if compiling fails).
    Autocast (bf16/fp16) is used on CUDA when ``amp``. With ``tta`` the outputs
    are averaged over the four flips of the YX plane (test-time augmentation:
    4x the compute, smoother boundaries).
    """
    task, device = loaded.task, loaded.device
    key = (fast, compile, str(device))
    if key not in loaded.fast:
        if fast or compile:
            loaded.fast[key] = inference_model(loaded.model, device, loaded.spatial_dims, fold=fast,
                                               channels_last=None if fast else False, compile=compile)
        else:
            loaded.fast[key] = (loaded.model.eval(), False)
    model, channels_last = loaded.fast[key]
    fmt = memory_format(loaded.spatial_dims)
    state = {"model": model}

    def run(x: torch.Tensor) -> torch.Tensor:
        with autocast(device, amp):
            if not tta:
                return task.activation(state["model"](x).float())
            total = None
            for dims in FLIPS:
                y = task.activation(state["model"](x.flip(dims) if dims else x).float())
                y = y.flip(dims) if dims else y
                total = y if total is None else total + y
            return total / len(FLIPS)

    def fn(x: torch.Tensor) -> torch.Tensor:
        if channels_last:
            x = x.contiguous(memory_format=fmt)
        try:
            y = run(x)
        except Exception as err:
            if not compile or state["model"] is not model:
                raise
            warnings.warn(f"torch.compile failed ({type(err).__name__}); predicting without it", stacklevel=2)
            state["model"] = getattr(model, "_orig_mod", loaded.model)
            y = run(x)
        return y.contiguous()

    return fn


def working_bytes(shape: tuple[int, ...], loaded: LoadedModel) -> int:
    """Estimated memory of the in-memory path for an image of ``shape`` (float32 input and outputs)."""
    n = int(np.prod(shape, dtype=np.int64))
    return 4 * n * (2 * loaded.temporal_context + 2 + loaded.out_channels)
