"""The parts of a training run, whatever it trains on (one image in memory, or a data set).

:class:`TrainingSetup` holds what the step loop (:mod:`.loop`) drives; :func:`.setup.set_up`
makes it, whether the data is held in memory or read patch by patch. A run starts from scratch,
from a model's weights (fine-tuning) or where a stopped run ended (:class:`Start`);
:func:`continue_from` loads what the start carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..config import MACHINE_FIELDS, TrainConfig, resolve
from ..data.axes import Layout
from ..data.normalize import Normalizer
from ..errors import ConfigError, InputError
from ..formats.checkpoint import ModelCard
from ..tasks import Task
from ..tasks.base import Problem
from .resume import RunState, last_weights, read_run_state, restore_rng

if TYPE_CHECKING:
    from ..data.dataset import DataSet
    from .ddp import World

#: Settings a resumed run may change without a warning that it no longer matches the uninterrupted one.
FREE_ON_RESUME = {"time_limit", "epochs", "preview_every", "amp", "pretrain", "pretrain_steps", *MACHINE_FIELDS}


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
    """Everything a training run needs, checked and ready: made by :func:`.setup.set_up`."""

    config: TrainConfig
    """The run's configuration with the task's defaults filled in (stored in the model file)."""
    task: Task
    device: torch.device
    layout: Layout
    """The image's layout (for a data set: the layout most of its images share)."""
    normalizer: Normalizer
    inputs: np.ndarray | None
    """The normalised image ``(N, C', *spatial)``, neighbouring frames stacked as channels
    (``None`` for a data set: it is read patch by patch)."""
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
    dataset: DataSet | None = None
    """The data set trained on (``None``: one image held in memory, :attr:`inputs`)."""
    data_rng: np.random.Generator | None = None
    """A data set sampler's own random stream (it may run ahead in a background thread)."""
    pretrained: dict[str, Any] | None = None
    """What self-supervised pretraining did (:mod:`.pretrain`), stored with the model."""
    world: World | None = None
    """The ranks training together (:mod:`.ddp`); ``None``: this process alone."""

    @property
    def in_channels(self) -> int:
        if self.problem.in_channels:
            return self.problem.in_channels
        return self.dataset.n_channels if self.dataset is not None else self.inputs.shape[1]

    @property
    def divisor(self):
        """Sizes the network takes (its registry entry's :class:`~..models.ModelProtocol`)."""
        from ..models import model_protocol

        return model_protocol(self.config.model, spatial_dims=self.layout.spatial_dims, in_channels=self.in_channels,
                              out_channels=self.problem.out_channels, **self.config.model_config).size_divisor

    def data_rng_state(self) -> dict | None:
        """The data stream's state as of the batches trained on (``None`` without a data set)."""
        if self.data_rng is None:
            return None
        state = self.problem.sampler.rng_state()
        return self.data_rng.bit_generator.state if state is None else state

    def close(self) -> None:
        """Stop the sampler's threads (reading patches, preparing batches ahead)."""
        self.problem.sampler.close()


def continue_from(start: Start, setup: TrainingSetup, requested: TrainConfig, spatial_shape: tuple[int, ...]) -> None:
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
    if setup.data_rng is not None and state.get("data_rng"):
        setup.data_rng.bit_generator.state = dict(state["data_rng"])
    if state.get("data_fingerprint") != setup.fingerprint:
        setup.notices.append(("the images or annotations differ from the checkpoint's: training continues, but it "
                              "will not match an uninterrupted run (to train on corrected annotations, fine-tune "
                              "instead)", "warning"))
    changed = changed_settings(requested, start.card, spatial_shape, setup.device.type)
    if changed:
        setup.notices.append((f"settings differ from the checkpoint's ({', '.join(changed)}): the run will not "
                              "match an uninterrupted one", "info"))


def build_model(config: TrainConfig, task: Task, problem: Problem, in_channels: int, layout: Layout,
                card: ModelCard | None, device: torch.device):
    """The network for ``problem`` (checked against ``card`` when training starts from a model), its optimiser
    and its gradient scaler."""
    from ..models import get_model
    from ..runtime.device import amp_dtype
    from .optim import make_optimizer

    if card is not None:
        check_fits(card, task, problem, in_channels, layout)
    model = get_model(config.model, spatial_dims=layout.spatial_dims, in_channels=in_channels,
                      out_channels=problem.out_channels, **config.model_config).to(device)
    optimizer = make_optimizer(model.parameters(), config)
    scaler = torch.amp.GradScaler("cuda", enabled=config.amp and amp_dtype(device) == torch.float16)
    return model, optimizer, scaler


def check_fits(card: ModelCard, task: Task, problem: Problem, in_channels: int, layout: Layout) -> None:
    """The starting model's inputs and outputs fit this data."""
    if card.in_channels != in_channels:
        raise InputError(f"the model was trained on {card.in_channels} input channel(s) but this image gives "
                         f"{in_channels} (axes {layout.axes})")
    names = problem.meta.get("class_names")
    if task.predicts_items and list(card.class_names or ()) != [str(n) for n in names or ()]:
        raise ConfigError(f"the starting model knows the classes {list(card.class_names or ())}, these annotations "
                          f"have {names}; train a new model")
    if card.out_channels != problem.out_channels:
        raise ConfigError("the starting model predicts a different number of classes than these annotations")


def changed_settings(config: TrainConfig, card: ModelCard, spatial_shape: tuple[int, ...], device: str) -> list[str]:
    """Settings of ``config`` that differ from those the checkpoint's run used (both with the task's defaults)."""
    ours = resolve(config, spatial_shape=spatial_shape, device=device, architecture=card.model_config).to_dict()
    saved = resolve(TrainConfig.from_dict(card.train_config), spatial_shape=spatial_shape, device=device,
                    architecture=card.model_config).to_dict()
    return [k for k, v in ours.items() if k not in FREE_ON_RESUME and v != saved.get(k)]
