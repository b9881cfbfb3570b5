"""Typed progress events yielded by the training and prediction generators.

A GUI connects them to progress bars and plots; the CLI prints them; tests assert
on them. They are plain frozen dataclasses, safe to hand from a worker thread to
the main thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrainingStarted:
    task: str
    model: str
    device: str
    n_parameters: int
    n_train_pixels: int
    n_val_pixels: int
    time_limit: float | None
    total_steps: int | None
    patch_size: tuple[int, ...]
    start_step: int = 0
    """Global step the run starts from (> 0 when resuming or fine-tuning: the loss curve continues)."""
    unit: str = "pixels"
    """What the training/validation counts count (pixels, objects or frames)."""


@dataclass(frozen=True)
class StepDone:
    step: int
    epoch: int
    loss: float
    learning_rate: float
    elapsed: float
    fraction: float
    """Fraction of the budget (time or epochs) used, 0..1."""
    eta: float | None
    steps_per_second: float
    phase: str = "train"
    """``"train"`` (the task itself) or ``"pretrain"`` (self-supervised pretraining before it: its own
    step count and budget; loss curves should not join the two)."""


@dataclass(frozen=True)
class ValidationDone:
    step: int
    epoch: int
    metrics: dict[str, float]
    score: float
    """The task's main validation number (higher is better)."""
    is_best: bool
    report: dict | None = None
    """Full report where the task makes one (classification: per-class scores, confusion matrix)."""
    size: int | None = None
    """How many items the metrics were computed on (true objects, annotated pixels, frames...)."""
    unit: str = "pixels"
    """What :attr:`size` counts: ``"objects"``, ``"pixels"`` or ``"frames"``."""

    @property
    def caveat(self) -> str | None:
        """A warning to show beside the metrics when the validation set is too small to trust them."""
        from .metrics import validation_caveat

        return validation_caveat(self.size, self.unit)


@dataclass(frozen=True)
class PreviewReady:
    step: int
    index: tuple[int, ...]
    """Index of the previewed sample along the image's non-spatial leading axes."""
    data: np.ndarray
    kind: str
    """``"labels"`` or ``"image"``."""


@dataclass(frozen=True)
class Notice:
    message: str
    level: str = "warning"


@dataclass(frozen=True)
class PredictProgress:
    done: int
    total: int
    stage: str = "tiles"
    """What ``done`` and ``total`` count: ``"tiles"``, ``"relabel"`` (blocks), ``"blocks"``, ``"images"``, ``"objects"``..."""
    elapsed: float = 0.0
    """Seconds the prediction has been running (paused time not counted)."""
    eta: float | None = None
    """Estimated seconds left in this stage (``None`` until there is something to estimate from)."""


@dataclass
class TrainResult:
    checkpoint: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    steps: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class LivePreview:
    """Live training: the current model's result on what the user looks at, and how sure it is.

    ``box`` is the previewed part of the image's axes without C (one-wide along frame/slice
    axes); ``data``, ``uncertainty`` have the box's spatial shape. ``confidence`` maps each
    object (or class) id in ``data`` to the mean top-class probability inside it.
    ``edits`` counts the annotation edits the weights had trained on (at least one step).
    ``source`` says what predicted it: ``"network"`` (the averaged recent weights) or
    ``"pixel classifier"`` (the fast first previews, until the network predicts new strokes better).
    """

    step: int
    box: tuple[slice, ...]
    data: np.ndarray
    uncertainty: np.ndarray | None
    confidence: dict[int, float]
    kind: str
    edits: int
    source: str = "network"


@dataclass(frozen=True)
class LiveWaiting:
    """Live training waits for annotations it can train on (``reason`` says what is missing)."""

    reason: str


@dataclass(frozen=True)
class LivePaused:
    """Live training paused itself after ``idle`` seconds without an edit; the next edit resumes it."""

    idle: float
