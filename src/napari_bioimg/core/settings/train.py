""":class:`TrainConfig`: every setting of a training run, declared once (type, default, bounds, help).

Front ends (the widget, the CLI, scripts) build a :class:`TrainConfig` from what the
user set and show the engine's message when it is refused; they neither re-check nor
re-default. The fields the task decides (:data:`TASK_DECIDED`) may stay ``None``,
meaning "the task's default": :func:`~..config.resolve` fills them in when training
starts, and :func:`~..config.suggest` gives a front end the same values to show
before the user changes anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import ConfigError
from .declare import Bound, check, declared, setting
from .defaults import (
    DEVICE_CHOICES,
    MAX_CONTEXT,
    OPTIMIZERS,
    PERCENTILES,
    PREVIEW_EVERY,
    TIME_LIMIT,
    VAL_FRACTION,
)
from .model import check_model_config

TASK_DECIDED = ("model", "batch_size", "patch_size", "learning_rate")
"""Fields whose ``None`` means "the task's default" (filled in by :func:`~..config.resolve`)."""
MACHINE_FIELDS = ("device", "num_threads")
"""Settings of the machine a run happens on rather than of the run: a resumed run does not inherit them."""
WEEK = 7 * 24 * 3600


@dataclass
class TrainConfig:
    """Everything that decides how a model is trained.

    The budget is either ``time_limit`` (seconds until the trained model is ready, the
    final validation and calibration included, the default: a biologist thinks in minutes,
    not epochs) or ``epochs`` of ``steps_per_epoch``
    random patch batches each. When both are given, whichever ends first wins.
    ``None`` in a field of :data:`TASK_DECIDED` means the task's default. Each field's
    bounds and help are declared with it (:func:`~.declare.setting`).
    """

    task: str = setting("instance", "what to learn: instance, semantic, classify, ... (see 'napari-bioimg info')")
    model: str | None = setting(None, "model family", unset="the task's")
    model_config: dict[str, Any] = setting(help="model options; the task's defaults fill in the others",
                                           factory=dict)
    spatial_dims: int | None = setting(None, "2 = slice by slice, 3 = volumetric", choices=(2, 3),
                                       unset="3 when the image has a Z axis")
    time_limit: float | None = setting(TIME_LIMIT, "seconds until the trained model is ready (final check and calibration included)", low=0, high=WEEK, low_open=True,
                                       hint="give seconds of training, at most one week (e.g. 120)")
    epochs: int | None = setting(None, "number of epochs of steps-per-epoch batches (instead of a time limit)",
                                 low=1, high=100_000, whole=True, hint="e.g. 10", unset="the time limit decides")
    steps_per_epoch: int = setting(50, "batches per epoch", low=1, high=100_000, whole=True, hint="e.g. 50")
    batch_size: int | None = setting(None, "patches per training step", low=1, high=1024, whole=True,
                                     hint="8 suits most images; lower it when memory runs out", unset="the task's")
    patch_size: tuple[int, ...] | int | None = setting(
        None, "patch size (one value, or one per spatial dim); for classification the crop size", low=8, high=4096,
        whole=True, hint="e.g. 128, or 32 96 96 in 3D", per_axis=True, unset="the task's; crops fitted to objects")
    learning_rate: float | None = setting(None, "learning rate", low=0, high=1, low_open=True, hint="try 1e-3",
                                          unset="the task's")
    optimizer: str = setting("adam", "optimizer", choices=OPTIMIZERS)
    momentum: float = setting(0.9, "SGD momentum", low=0, high=1, high_open=True, hint="e.g. 0.9")
    weight_decay: float = setting(0.0, "weight decay", low=0, high=1, hint="e.g. 1e-4, or 0 for none")
    grad_clip: float | None = setting(1.0, "gradient norm clip; 0 turns clipping off", low=0, high=1e6,
                                      hint="e.g. 1.0; 0 or unset (None) turns clipping off", unset="off")
    val_fraction: float = setting(VAL_FRACTION, "share of the annotations held apart for validation", low=0,
                                  high=0.9, high_open=True, hint="e.g. 0.15; 0 holds nothing apart")
    patience: int | None = setting(None, "stop early after this many validations without improvement", low=1,
                                   high=10_000, whole=True, unset="use the whole budget",
                                   hint="validations without improvement; leave it unset to use the whole budget")
    augment: bool = setting(True, "random flips, rotations and intensity changes")
    seed: int | None = setting(0, "random seed", low=0, high=2**32 - 1, whole=True, unset="a new one each run",
                               hint="any whole number >= 0, or unset for a different run each time")
    device: str = setting("auto", "where to run: auto, cuda (or cuda:N), mps or cpu")
    amp: bool = setting(True, "mixed precision on a GPU")
    preview_every: float = setting(PREVIEW_EVERY, "seconds between previews while training", low=0, high=WEEK,
                                   hint="seconds; 0 turns the live preview off")
    percentiles: tuple[float, float] = setting(PERCENTILES, "normalisation percentiles (low, high)")
    num_threads: int | None = setting(None, "CPU threads for torch; fewer can be faster on a busy machine", low=1,
                                      high=1024, whole=True, hint="leave it unset for torch's choice",
                                      unset="torch's choice, one per core")
    task_config: dict[str, Any] = setting(help="the task's own options", factory=dict)
    temporal_context: int = setting(0, "time-lapse (T axis): also feed frames t-N..t+N as channels (0: each frame "
                                    "alone)", low=0, high=MAX_CONTEXT, whole=True,
                                    hint="frames on each side; 0 treats each frame alone")
    pretrain: float | None = setting(
        None, "seconds of self-supervised (blind-spot) pretraining on every image, annotated or not, before the "
        "task's own training (not counted in the time limit)", low=0, high=WEEK, low_open=True, unset="none",
        hint="seconds of self-supervised pretraining before the task's own training (e.g. 60), or unset for none")
    pretrain_steps: int | None = setting(None, "optimizer steps of pretraining (with pretrain: whichever ends first)",
                                         low=1, high=1_000_000, whole=True, unset="none",
                                         hint="optimizer steps of pretraining, or unset")

    def validate(self) -> TrainConfig:
        """Check every value; raise :class:`ConfigError` naming the field and how to fix it."""
        if self.time_limit is None and self.epochs is None:
            raise ConfigError("give a time limit (seconds) or a number of epochs, so training knows when to stop")
        check(self, [name for name in _DECLARED if name != "device"])
        if str(self.device).split(":")[0].lower() not in DEVICE_CHOICES:
            raise ConfigError(f"must be one of {', '.join(DEVICE_CHOICES)}, got {self.device!r}", field="device")
        check_model_config(self.model_config)
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ConfigError(f"must satisfy 0 <= low < high <= 100, got {self.percentiles}", field="percentiles")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if isinstance(d["patch_size"], tuple):
            d["patch_size"] = list(d["patch_size"])
        d["percentiles"] = list(d["percentiles"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """A configuration from :meth:`to_dict` (or an older model file's ``train_config``: unknown keys are
        dropped, missing ones take today's defaults)."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        if isinstance(kwargs.get("patch_size"), list):
            kwargs["patch_size"] = tuple(kwargs["patch_size"])
        if "percentiles" in kwargs:
            kwargs["percentiles"] = tuple(kwargs["percentiles"])
        return cls(**kwargs)


_DECLARED = declared(TrainConfig)
BOUNDS: dict[str, Bound] = {name: s.bound for name, s in _DECLARED.items() if s.bound is not None and not s.per_axis}
"""Every numeric field's range (read from the declarations)."""
PATCH_BOUND: Bound = _DECLARED["patch_size"].bound


def check_field(name: str, value: Any) -> None:
    """Raise :class:`ConfigError` (``field=name``) when ``value`` is outside :data:`BOUNDS` (``None`` passes)."""
    if value is None:
        return
    problem = BOUNDS[name].problem(value)
    if problem:
        raise ConfigError(problem, field=name)


