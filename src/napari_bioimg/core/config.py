"""Training configuration: one validated dataclass shared by the CLI, widgets and scripts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import ConfigError
from .runtime.device import DEVICE_CHOICES

OPTIMIZERS = ("adam", "adamw", "sgd")
LEARNING_RATE = 2e-3
"""Learning rate of tasks that do not suggest their own."""
PATCH_2D = 128
PATCH_3D = (32, 96, 96)
PREVIEW_EVERY = 5.0
"""Seconds between live previews in a GUI."""


@dataclass
class TrainConfig:
    """Everything that decides how a model is trained.

    The budget is either ``time_limit`` (seconds of training, the default: a
    biologist thinks in minutes, not epochs) or ``epochs`` of ``steps_per_epoch``
    random patch batches each. When both are given, whichever ends first wins.
    """

    task: str = "instance"
    model: str = "unet"
    model_config: dict[str, Any] = field(default_factory=dict)
    spatial_dims: int | None = None
    time_limit: float | None = 120.0
    epochs: int | None = None
    steps_per_epoch: int = 50
    batch_size: int = 8
    patch_size: tuple[int, ...] | int | None = None
    learning_rate: float = LEARNING_RATE
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    val_fraction: float = 0.15
    patience: int | None = None
    """Stop when this many validations in a row did not improve the score (None: use the whole budget)."""
    augment: bool = True
    seed: int | None = 0
    device: str = "auto"
    amp: bool = True
    preview_every: float = PREVIEW_EVERY
    percentiles: tuple[float, float] = (1.0, 99.8)
    num_threads: int | None = None
    """CPU threads for torch (None: leave torch's setting). A GUI keeps one core free for itself."""
    task_config: dict[str, Any] = field(default_factory=dict)
    temporal_context: int = 0
    """Time-lapses: also feed frames t-k..t+k as channels (0 = each frame alone)."""

    def validate(self) -> TrainConfig:
        """Check ranges; raise :class:`ConfigError` saying how to fix a bad value."""
        if self.time_limit is None and self.epochs is None:
            raise ConfigError("give a time limit (seconds) or a number of epochs, so training knows when to stop")
        if self.time_limit is not None and not 0 < self.time_limit <= 7 * 24 * 3600:
            raise ConfigError(f"time_limit must be between 0 and one week in seconds, got {self.time_limit}")
        if self.epochs is not None and not 1 <= self.epochs <= 100_000:
            raise ConfigError(f"epochs must be between 1 and 100000, got {self.epochs}")
        if not 1 <= self.steps_per_epoch <= 100_000:
            raise ConfigError(f"steps_per_epoch must be between 1 and 100000, got {self.steps_per_epoch}")
        if not 1 <= self.batch_size <= 1024:
            raise ConfigError(f"batch_size must be between 1 and 1024, got {self.batch_size}")
        if not 0 < self.learning_rate <= 1:
            raise ConfigError(f"learning_rate must be in (0, 1], got {self.learning_rate}; try 1e-3")
        if self.optimizer.lower() not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not 0 <= self.val_fraction < 0.9:
            raise ConfigError(f"val_fraction must be in [0, 0.9), got {self.val_fraction}")
        if self.patience is not None and not 1 <= self.patience <= 10_000:
            raise ConfigError(f"patience must be between 1 and 10000 validations, or None, got {self.patience}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"grad_clip must be positive or None, got {self.grad_clip}")
        if self.device.split(":")[0].lower() not in DEVICE_CHOICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICE_CHOICES)}, got {self.device!r}")
        if self.spatial_dims not in (None, 2, 3):
            raise ConfigError(f"spatial_dims must be 2, 3 or None (from the axes), got {self.spatial_dims}")
        if self.patch_size is not None:
            sizes = (self.patch_size,) if isinstance(self.patch_size, int) else tuple(self.patch_size)
            if not sizes or any(int(s) < 8 or int(s) > 4096 for s in sizes):
                raise ConfigError(f"patch_size values must be between 8 and 4096, got {self.patch_size}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ConfigError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")
        if not 0 <= int(self.temporal_context) <= 10:
            raise ConfigError(f"temporal_context must be between 0 and 10 frames, got {self.temporal_context}")
        if self.num_threads is not None and not 1 <= self.num_threads <= 1024:
            raise ConfigError(f"num_threads must be between 1 and 1024, got {self.num_threads}")
        if self.preview_every < 0:
            raise ConfigError("preview_every must be >= 0 seconds (0 turns the live preview off)")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if isinstance(d["patch_size"], tuple):
            d["patch_size"] = list(d["patch_size"])
        d["percentiles"] = list(d["percentiles"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        if isinstance(kwargs.get("patch_size"), list):
            kwargs["patch_size"] = tuple(kwargs["patch_size"])
        if "percentiles" in kwargs:
            kwargs["percentiles"] = tuple(kwargs["percentiles"])
        return cls(**kwargs)


def suggest(task: str, *, spatial_dims: int = 2, device: str = "cpu", model: str | None = None) -> TrainConfig:
    """The engine's settings for ``task``: what a front end shows before the user changes anything.

    Front ends (widget, CLI) start from this and change only what the user set, so
    every default lives here and in the task, never in a front end.

    Parameters
    ----------
    task
        Registered task name (see :func:`~napari_bioimg.core.tasks.list_tasks`).
    spatial_dims
        2 or 3: the model's dimensionality.
    device
        ``"cpu"``, ``"cuda"``, ``"mps"`` (or ``"cuda:1"``): model width is chosen for it.
    model
        A model family; the task's default when ``None``.
    """
    from .tasks import get_task

    t = get_task(task)
    model = model or t.default_model
    device_type = device.split(":")[0]
    patch: int | tuple[int, ...] | None
    if t.direct_model:
        patch = None  # crops are fitted to the objects
    elif spatial_dims == 3:
        side = t.default_patch or PATCH_2D
        patch = PATCH_3D if side >= PATCH_2D else (16, side, side)
    else:
        patch = t.default_patch or PATCH_2D
    return TrainConfig(
        task=t.name, model=model, model_config=t.default_model_config(spatial_dims, device_type, model),
        spatial_dims=spatial_dims, batch_size=t.default_batch_size, patch_size=patch,
        learning_rate=t.default_learning_rate or LEARNING_RATE, preview_every=PREVIEW_EVERY,
    )
