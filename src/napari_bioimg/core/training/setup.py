"""Setting up a training run: where it starts, the data, the model and the optimiser.

:func:`set_up` turns what the user gave (an image and its annotations, or a
:class:`~..data.dataset.DataSet`; a :class:`TrainConfig`; maybe a checkpoint to
fine-tune or to resume) into a :class:`~.parts.TrainingSetup`: every part the step
loop (:mod:`.loop`) drives, checked, with the config's task defaults resolved
(:func:`~..config.resolve`). Nothing here trains.

One image is the one-sample case of a data set (:meth:`DataSet.single`). An image
that fits in memory (and a one-image data set that does) is normalised whole and
bound to its task here (``task.make_problem``: every task, temporal context, the
denoiser's focus on bright structures); several images, and one too big to hold,
are read patch by patch (:mod:`.sets`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from ..config import TrainConfig, resolve, resume_config
from ..data.axes import Layout, make_layout
from ..data.dataset import DataSet
from ..data.normalize import Normalizer, count_nonfinite
from ..data.stacking import stack_images
from ..data.temporal import check_context, stack_context
from ..errors import ConfigError, InputError
from ..formats.checkpoint import ModelCard, check_checkpoint
from ..models import get_model
from ..runtime.device import resolve_device
from ..tasks import Task, get_task
from .ddp import attach
from .parts import Start, TrainingSetup, build_model, continue_from
from .resume import RunState, data_fingerprint, read_run_state
from .sets import set_up_dataset

#: Image-like entries of ``extra`` that are laid out and normalised exactly like the image.
IMAGE_EXTRAS = ("target", "reference")
#: One image with up to this many values (pixels x channels) is held in memory; a bigger one is read patch by patch.
IN_MEMORY_VALUES = 64 << 20


def set_up(data: Any, annotations: Any, config: TrainConfig | None, *, axes: str | None = None, rgb: bool = False,
           axes_hint: str | None = None, init_checkpoint: dict | None = None, resume: dict | None = None,
           extra: dict | None = None) -> TrainingSetup:
    """Check the input and build the parts of a training run (see :func:`.loop.train` for the parameters)."""
    config, start = _starting_point(config, init_checkpoint, resume)
    task = get_task(config.task)
    if isinstance(data, DataSet):
        if annotations is not None:
            raise InputError("a data set carries its own annotations and targets (make_sample(image, labels, "
                             "target=...)); give no separate annotations")
        one = _one_image(data, config, task)
        if one is None:
            if extra:
                raise InputError(f"{', '.join(extra)}: given for one image, but training reads {len(data)} image(s) "
                                 "patch by patch; give targets and classes with each sample (make_sample)")
            return set_up_dataset(data, config, start, task)
        data, annotations, axes, own, config = one
        extra = dict(own or {}, **(extra or {})) or None
    elif _too_big(data) and not task.direct_model and not config.temporal_context:
        target = (extra or {}).get("target")
        if set(extra or {}) - {"target"}:
            raise InputError("an image this large is read patch by patch, which takes no reference image; "
                             "leave the reference out")
        ds = DataSet.single(data, annotations, axes=axes, rgb=rgb, axes_hint=axes_hint, target=target,
                            spatial_dims=config.spatial_dims or task.default_spatial_dims)
        return set_up_dataset(ds, config, start, task)
    return _set_up_image(data, annotations, config, start, task, axes=axes, rgb=rgb, axes_hint=axes_hint,
                         extra=extra)


def _too_big(image: Any) -> bool:
    """A lazy image (zarr, dask, memory map) with more values than fit the one-image path."""
    if isinstance(image, np.ndarray) and not isinstance(image, np.memmap):
        return False
    shape = getattr(image, "shape", None)
    return shape is not None and int(np.prod(shape)) > IN_MEMORY_VALUES


def _one_image(ds: DataSet, config: TrainConfig, task: Task) -> tuple | None:
    """A one-image data set that fits in memory, as the one-image path takes it (``None`` otherwise)."""
    if len(ds) != 1:
        if task.direct_model:  # crops of every image, cut from one padded stack of them
            image, objects, axes, classes = stack_images(ds, frames="objects" not in task.inputs,
                                                         max_values=IN_MEMORY_VALUES)
            return image, objects, axes, {"classes": classes}, replace(config, spatial_dims=ds.spatial_dims)
        if config.temporal_context:
            raise ConfigError("temporal context trains on one time-lapse at a time, not on a set of images; set it "
                              "to 0", field="temporal_context")
        return None
    s = ds[0]
    if ds.n_pixels(0) * ds.n_channels > IN_MEMORY_VALUES and not task.direct_model and not config.temporal_context:
        return None

    def whole(source):
        return None if source is None else source[(slice(None),) * len(source.shape)]

    extra = {"target": whole(s.target)} if s.target is not None else {}
    if s.classes is not None:
        extra["classes"] = s.classes
    dims = config.spatial_dims or task.default_spatial_dims or ds.spatial_dims
    return whole(s.image), whole(s.labels), s.image.axes, extra or None, replace(config, spatial_dims=dims)


def _set_up_image(image: Any, annotations: Any, config: TrainConfig, start: Start, task: Task, *,
                  axes: str | None, rgb: bool, axes_hint: str | None, extra: dict | None) -> TrainingSetup:
    """One image held in memory, bound to its task by ``task.make_problem``."""
    card = start.card
    device = resolve_device(config.device)
    rng = np.random.default_rng(config.seed)
    notices: list[tuple[str, str]] = []

    image = np.asarray(image)
    if card is not None and start.resume and axes is None:
        axes = card.axes
    layout = make_layout(image.shape, axes, config.spatial_dims or task.default_spatial_dims, rgb=rgb,
                         hint=axes_hint)
    if card is not None and card.spatial_dims != layout.spatial_dims:
        raise ConfigError(f"the model is {card.spatial_dims}D but training would be {layout.spatial_dims}D "
                          f"(axes {layout.axes}); set the dimensionality to match")
    requested = config
    config = resolve(config, spatial_shape=layout.spatial_shape, device=device.type,
                     architecture=card.model_config if card is not None else None)
    x = layout.to_canonical(image)
    bad = count_nonfinite(x)
    if bad:
        notices.append((f"{bad} NaN/inf pixel(s) in the image were set to its low value for training", "warning"))
    if min(layout.spatial_shape) < 4:
        raise InputError(f"the image is too small to train on: spatial size {layout.spatial_shape} (axes {layout.axes})")
    # a resumed run's weights were trained with the checkpoint's values
    normalizer = Normalizer.from_dict(card.normalizer) if start.resume else Normalizer(*config.percentiles).fit(x)
    context = check_context(config.temporal_context, layout)
    inputs = stack_context(normalizer.apply(x, refit=False), layout, context)
    labels = _annotations(task, layout, annotations)
    fingerprint = data_fingerprint(image, None if annotations is None else np.asarray(annotations))
    if "target" in task.inputs and (extra or {}).get("target") is None:
        raise InputError(f"task {task.name!r} needs a target image: a clean (or high-SNR) image of the same pixels")
    extra = _prepare_extra(extra, image, layout, normalizer, x)

    probe = get_model(config.model, spatial_dims=layout.spatial_dims, in_channels=inputs.shape[1], out_channels=1,
                      **config.model_config)
    problem = task.make_problem(inputs, labels, config, rng, getattr(probe, "size_divisor", 1), extra)
    notices += [(message, "warning") for message in problem.notices]
    in_channels = problem.in_channels or inputs.shape[1]
    model, optimizer, scaler = build_model(config, task, problem, in_channels, layout, card, device)
    output_context = {"intensity_low": normalizer.low, "intensity_high": normalizer.high,
                      "source_dtype": image.dtype.str}
    setup = TrainingSetup(config, task, device, layout, normalizer, inputs, context, problem, model, optimizer, scaler,
                          rng, RunState(), fingerprint, output_context, notices, start.resume)
    if start.checkpoint is not None:
        continue_from(start, setup, requested, layout.spatial_shape)
    attach(setup)  # several processes: each draws its own patches
    return setup



def _starting_point(config: TrainConfig | None, init_checkpoint: dict | None,
                    resume: dict | None) -> tuple[TrainConfig, Start]:
    """The configuration (validated; the checkpoint's own when resuming without one) and the start."""
    if resume is not None and init_checkpoint is not None:
        raise ConfigError("give either a checkpoint to resume or one to fine-tune from, not both")
    if resume is not None:
        resume = check_checkpoint(resume)
        read_run_state(resume)  # raises a clear error when the file holds no training state
        card = ModelCard.of(resume)
        config = config or resume_config(card.train_config)
        start = Start(resume, resume=True)
    elif init_checkpoint is not None:
        init_checkpoint = check_checkpoint(init_checkpoint)
        card = ModelCard.of(init_checkpoint)
        config = config or TrainConfig(task=card.task)
        start = Start(init_checkpoint)
    else:
        return (config or TrainConfig()).validate(), Start()
    if config.task != card.task or config.model not in (None, card.model):
        what = "resume" if start.resume else "fine-tune"
        raise ConfigError(f"the checkpoint trained {card.model!r} for task {card.task!r}: it cannot {what} "
                          f"{config.model or 'a model'!r} for {config.task!r}")
    # the model decides its family and dimensionality
    return replace(config, model=card.model, spatial_dims=config.spatial_dims or card.spatial_dims).validate(), start


def _annotations(task: Task, layout: Layout, annotations: Any) -> np.ndarray | None:
    if annotations is not None:
        return layout.labels_to_canonical(np.asarray(annotations))
    if task.needs_annotations:
        raise InputError(f"task {task.name!r} needs annotations: pick or paint a labels layer")
    return None


def _prepare_extra(extra: dict | None, image: np.ndarray, layout: Layout, normalizer: Normalizer,
                   x: np.ndarray) -> dict:
    """Bring image-like extras (a restoration target, a clean reference) to the canonical layout.

    They must have the image's shape; they are normalised with the image's
    percentiles (so a clean copy of the same pixels lands on the same scale) and
    keep NaN where they are not finite. ``invalid`` marks the image's own NaN/inf.
    """
    out = dict(extra or {})
    if count_nonfinite(x):
        out["invalid"] = ~np.isfinite(x)
    for name in IMAGE_EXTRAS:
        if out.get(name) is None:
            continue
        arr = np.asarray(out[name])
        if arr.shape != image.shape:
            raise InputError(f"the {name} image has shape {arr.shape} but the image has {image.shape}; "
                             f"the {name} must cover the same pixels (same axes, same size)")
        if arr.dtype.kind not in "biuf":
            raise InputError(f"the {name} image must hold numbers, got dtype {arr.dtype}")
        canonical = layout.to_canonical(arr)
        finite = np.isfinite(canonical)
        if not finite.any():
            raise InputError(f"the {name} image has no finite pixel values (all NaN or inf)")
        normed = normalizer.apply(canonical, refit=False)
        normed[~finite] = np.nan
        out[name] = normed
    return out
