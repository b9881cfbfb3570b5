"""Setting up a training run: where it starts, the data, the model and the optimiser.

:func:`set_up` turns what the user gave (an image, annotations, a :class:`TrainConfig`,
maybe a checkpoint to fine-tune or to resume) into a :class:`TrainingSetup`: every
part the step loop (:mod:`.loop`) drives, checked, with the config's task defaults
resolved (:func:`~..config.resolve`). Nothing here trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import MACHINE_FIELDS, TrainConfig, resolve, resume_config
from ..data.axes import Layout, make_layout
from ..data.normalize import Normalizer, count_nonfinite
from ..data.temporal import check_context, stack_context
from ..errors import ConfigError, InputError
from ..formats.checkpoint import ModelCard, check_checkpoint
from ..models import get_model
from ..runtime.device import amp_dtype, resolve_device
from ..tasks import Task, get_task
from ..tasks.base import Problem
from .optim import make_optimizer
from .resume import RunState, data_fingerprint, last_weights, read_run_state, restore_rng

#: Image-like entries of ``extra`` that are laid out and normalised exactly like the image.
IMAGE_EXTRAS = ("target", "reference")
#: Settings a resumed run may change without a warning that it no longer matches the uninterrupted one.
FREE_ON_RESUME = {"time_limit", "epochs", "preview_every", "amp", *MACHINE_FIELDS}


@dataclass
class Start:
    """Where training starts: from scratch, from a model's weights (fine-tuning) or where a run stopped."""

    checkpoint: dict[str, Any] | None = None
    resume: bool = False

    @property
    def card(self) -> ModelCard | None:
        return None if self.checkpoint is None else ModelCard.of(self.checkpoint)


@dataclass
class TrainingSetup:
    """Everything a training run needs, checked and ready: made by :func:`set_up`."""

    config: TrainConfig
    """The run's configuration with the task's defaults filled in (stored in the model file)."""
    task: Task
    device: torch.device
    layout: Layout
    normalizer: Normalizer
    inputs: np.ndarray
    """The normalised image ``(N, C', *spatial)``, neighbouring frames stacked as channels."""
    context: int
    problem: Problem
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    rng: np.random.Generator
    run: RunState
    fingerprint: str
    output_context: dict[str, Any]
    """What an image task's post-processing needs to map previews back to the image's intensities."""
    notices: list[tuple[str, str]] = field(default_factory=list)
    """``(message, level)`` for the user, about the data and the starting point."""
    resumed: bool = False
    """The run continues a stopped one (see :mod:`.resume`)."""

    @property
    def in_channels(self) -> int:
        return self.problem.in_channels or self.inputs.shape[1]

    @property
    def divisor(self):
        return getattr(self.model, "size_divisor", 1)


def set_up(image: Any, annotations: Any, config: TrainConfig | None, *, axes: str | None = None, rgb: bool = False,
           axes_hint: str | None = None, init_checkpoint: dict | None = None, resume: dict | None = None,
           extra: dict | None = None) -> TrainingSetup:
    """Check the input and build the parts of a training run (see :func:`.loop.train` for the parameters)."""
    config, start = _starting_point(config, init_checkpoint, resume)
    card = start.card
    task = get_task(config.task)
    device = resolve_device(config.device)
    rng = np.random.default_rng(config.seed)
    if config.seed is not None:
        torch.manual_seed(config.seed)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
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
    if card is not None:
        _check_fits(card, task, problem, in_channels, layout)
    model = get_model(config.model, spatial_dims=layout.spatial_dims, in_channels=in_channels,
                      out_channels=problem.out_channels, **config.model_config).to(device)
    optimizer = make_optimizer(model.parameters(), config)
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and amp_dtype(device) == torch.float16)
    output_context = {"intensity_low": normalizer.low, "intensity_high": normalizer.high,
                      "source_dtype": image.dtype.str}
    setup = TrainingSetup(config, task, device, layout, normalizer, inputs, context, problem, model, optimizer, scaler,
                          rng, RunState(), fingerprint, output_context, notices, start.resume)
    if start.checkpoint is not None:
        _continue_from(start, setup, requested)
    return setup


def _continue_from(start: Start, setup: TrainingSetup, requested: TrainConfig) -> None:
    """Load a starting checkpoint's weights and history (fine-tuning), or its whole training state (resuming)."""
    ckpt, run = start.checkpoint, setup.run
    if not start.resume:
        setup.model.load_state_dict(ckpt["state_dict"])
        run.history = [dict(h) for h in ckpt.get("history", [])]
        run.step = run.run_start = int(run.history[-1]["step"]) if run.history else 0
        return
    setup.run, state = read_run_state(ckpt)
    setup.model.load_state_dict(last_weights(ckpt))
    setup.optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler") and setup.scaler.is_enabled():
        setup.scaler.load_state_dict(state["scaler"])
    restore_rng(state["rng"], setup.rng, setup.device)
    if state.get("data_fingerprint") != setup.fingerprint:
        setup.notices.append(("the image or annotations differ from the checkpoint's: training continues, but it "
                              "will not match an uninterrupted run (to train on corrected annotations, fine-tune "
                              "instead)", "warning"))
    changed = _changed_settings(requested, start.card, setup.layout.spatial_shape, setup.device.type)
    if changed:
        setup.notices.append((f"settings differ from the checkpoint's ({', '.join(changed)}): the run will not "
                              "match an uninterrupted one", "info"))


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


def _check_fits(card: ModelCard, task: Task, problem: Problem, in_channels: int, layout: Layout) -> None:
    """The starting model's inputs and outputs fit this data."""
    if card.in_channels != in_channels:
        raise InputError(f"the model was trained on {card.in_channels} input channel(s) but this image gives "
                         f"{in_channels} (axes {layout.axes})")
    names = problem.meta.get("class_names")
    if task.direct_model and list(card.class_names or ()) != [str(n) for n in names or ()]:
        raise ConfigError(f"the starting model knows the classes {list(card.class_names or ())}, these annotations "
                          f"have {names}; train a new model")
    if card.out_channels != problem.out_channels:
        raise ConfigError("the starting model predicts a different number of classes than these annotations")


def _changed_settings(config: TrainConfig, card: ModelCard, spatial_shape: tuple[int, ...], device: str) -> list[str]:
    """Settings of ``config`` that differ from those the checkpoint's run used (both with the task's defaults)."""
    ours = resolve(config, spatial_shape=spatial_shape, device=device, architecture=card.model_config).to_dict()
    saved = resolve(TrainConfig.from_dict(card.train_config), spatial_shape=spatial_shape, device=device,
                    architecture=card.model_config).to_dict()
    return [k for k, v in ours.items() if k not in FREE_ON_RESUME and v != saved.get(k)]
