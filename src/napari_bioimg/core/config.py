"""Training configuration: every default and every check of a training run, in one place.

Front ends (the widget, the CLI, scripts) build a :class:`TrainConfig` from what the
user set and show the engine's message when it is refused; they neither re-check nor
re-default. The fields the task decides (:data:`TASK_DECIDED`) may stay ``None``,
meaning "the task's default": :func:`resolve` fills them in when training starts
(it knows the model's dimensionality and the device then), and :func:`suggest` gives
a front end the same values to show before the user changes anything.

Bounds are declared in :data:`BOUNDS`; a refused value raises a :class:`ConfigError`
whose ``field`` names the setting and whose message says how to fix it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .data.temporal import MAX_CONTEXT
from .errors import ConfigError
from .runtime.device import DEVICE_CHOICES

OPTIMIZERS = ("adam", "adamw", "sgd")
LEARNING_RATE = 2e-3
"""Learning rate of tasks that do not suggest their own."""
PATCH_2D = 128
PATCH_3D = (32, 96, 96)
"""3D patch on a GPU (CUDA, MPS)."""
PATCH_3D_CPU = (16, 64, 64)
"""3D patch on a CPU: a 32x96x96 batch of 8 takes ~15 s per step on one core, this with a batch of
:data:`BATCH_3D_CPU` ~1 s (``benchmarks/FINDINGS.md``, issue 16.2)."""
BATCH_3D_CPU = 4
PREVIEW_EVERY = 5.0
"""Seconds between live previews in a GUI."""
TIME_LIMIT = 120.0
"""Seconds of training when the user gives no budget."""
TASK_DECIDED = ("model", "batch_size", "patch_size", "learning_rate")
"""Fields whose ``None`` means "the task's default" (filled in by :func:`resolve`)."""
MACHINE_FIELDS = ("device", "num_threads")
"""Settings of the machine a run happens on rather than of the run: a resumed run does not inherit them."""


@dataclass(frozen=True)
class Bound:
    """The range of a numeric setting, and a hint that says how to pick a good value."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    """``low`` itself is refused (the value must be greater)."""
    high_open: bool = False
    whole: bool = False
    """Whole numbers only."""
    hint: str = ""

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (the sentence after the field's name), or ``None``."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
            return f"must be a number, got {value!r}"
        if self.whole and value != int(value):
            return f"must be a whole number, got {value}"
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            what = f"greater than {self.low:g}" if self.low_open else f"at least {self.low:g}"
        elif self.high is not None and (value >= self.high if self.high_open else value > self.high):
            what = f"less than {self.high:g}" if self.high_open else f"at most {self.high:g}"
        else:
            return None
        return f"must be {what}, got {value:g}" + (f"; {self.hint}" if self.hint else "")


BOUNDS: dict[str, Bound] = {
    "time_limit": Bound(0, 7 * 24 * 3600, low_open=True, hint="give seconds of training, at most one week "
                                                              "(e.g. 120)"),
    "epochs": Bound(1, 100_000, whole=True, hint="e.g. 10"),
    "steps_per_epoch": Bound(1, 100_000, whole=True, hint="e.g. 50"),
    "batch_size": Bound(1, 1024, whole=True, hint="8 suits most images; lower it when memory runs out"),
    "learning_rate": Bound(0, 1, low_open=True, hint="try 1e-3"),
    "momentum": Bound(0, 1, high_open=True, hint="e.g. 0.9"),
    "weight_decay": Bound(0, 1, hint="e.g. 1e-4, or 0 for none"),
    "grad_clip": Bound(0, low_open=True, hint="e.g. 1.0; leave it unset (None) to turn clipping off"),
    "val_fraction": Bound(0, 0.9, high_open=True, hint="e.g. 0.15; 0 holds nothing apart"),
    "patience": Bound(1, 10_000, whole=True, hint="validations without improvement; leave it unset to use "
                                                  "the whole budget"),
    "temporal_context": Bound(0, MAX_CONTEXT, whole=True, hint="frames on each side; 0 treats each frame alone"),
    "num_threads": Bound(1, 1024, whole=True, hint="leave it unset for torch's choice"),
    "preview_every": Bound(0, hint="seconds; 0 turns the live preview off"),
    "seed": Bound(0, whole=True, hint="any whole number >= 0, or unset for a different run each time"),
    "pretrain": Bound(0, 7 * 24 * 3600, low_open=True, hint="seconds of self-supervised pretraining before "
                                                            "the task's own training (e.g. 60), or unset for none"),
    "pretrain_steps": Bound(1, 1_000_000, whole=True, hint="optimizer steps of pretraining, or unset"),
}
PATCH_BOUND = Bound(8, 4096, whole=True, hint="e.g. 128, or 32 96 96 in 3D")


def check_field(name: str, value: Any) -> None:
    """Raise :class:`ConfigError` (``field=name``) when ``value`` is outside :data:`BOUNDS` (``None`` passes)."""
    if value is None:
        return
    problem = BOUNDS[name].problem(value)
    if problem:
        raise ConfigError(problem, field=name)


@dataclass
class TrainConfig:
    """Everything that decides how a model is trained.

    The budget is either ``time_limit`` (seconds of training, the final validation
    and calibration included, the default: a biologist thinks in minutes, not epochs) or ``epochs`` of ``steps_per_epoch``
    random patch batches each. When both are given, whichever ends first wins.
    ``None`` in a field of :data:`TASK_DECIDED` means the task's default.
    """

    task: str = "instance"
    model: str | None = None
    """Model family (``None``: the task's, e.g. ``"unet"``)."""
    model_config: dict[str, Any] = field(default_factory=dict)
    """Model options; the task's defaults fill in the others."""
    spatial_dims: int | None = None
    """2 or 3 (``None``: 3 when the image has a Z axis, unless the task says otherwise)."""
    time_limit: float | None = TIME_LIMIT
    epochs: int | None = None
    steps_per_epoch: int = 50
    batch_size: int | None = None
    patch_size: tuple[int, ...] | int | None = None
    """Patch (or, for classification, crop) size; ``None``: the task's (crops fitted to the objects)."""
    learning_rate: float | None = None
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
    pretrain: float | None = None
    """Seconds of self-supervised pretraining on every image (annotated or not) before the task's own
    training (:mod:`.training.pretrain`); ``None``: none. Not counted in ``time_limit``."""
    pretrain_steps: int | None = None
    """Optimizer steps of pretraining (with ``pretrain``, whichever ends first)."""

    def validate(self) -> TrainConfig:
        """Check every value; raise :class:`ConfigError` naming the field and how to fix it."""
        if self.time_limit is None and self.epochs is None:
            raise ConfigError("give a time limit (seconds) or a number of epochs, so training knows when to stop")
        for name in BOUNDS:
            check_field(name, getattr(self, name))
        if str(self.optimizer).lower() not in OPTIMIZERS:
            raise ConfigError(f"must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}", field="optimizer")
        if str(self.device).split(":")[0].lower() not in DEVICE_CHOICES:
            raise ConfigError(f"must be one of {', '.join(DEVICE_CHOICES)}, got {self.device!r}", field="device")
        if self.spatial_dims not in (None, 2, 3):
            raise ConfigError(f"must be 2, 3 or unset (from the axes), got {self.spatial_dims}", field="spatial_dims")
        if self.patch_size is not None:
            sizes = (self.patch_size,) if isinstance(self.patch_size, numbers.Real) else tuple(self.patch_size)
            bad = [s for s in sizes if PATCH_BOUND.problem(s)]
            if not sizes or bad:
                raise ConfigError(f"values must be whole numbers between 8 and 4096, got {self.patch_size}; "
                                  f"{PATCH_BOUND.hint}", field="patch_size")
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
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        if isinstance(kwargs.get("patch_size"), list):
            kwargs["patch_size"] = tuple(kwargs["patch_size"])
        if "percentiles" in kwargs:
            kwargs["percentiles"] = tuple(kwargs["percentiles"])
        return cls(**kwargs)


def suggest(task: str, *, spatial_dims: int = 2, device: str = "cpu", model: str | None = None) -> TrainConfig:
    """The engine's settings for ``task``: what a front end shows before the user changes anything.

    Front ends (widget, CLI) start from this, or leave the task's fields ``None``,
    and change only what the user set, so every default lives here and in the
    task, never in a front end.

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
        big = PATCH_3D if _on_gpu(device_type) else PATCH_3D_CPU
        patch = big if side >= PATCH_2D else (16, side, side)
    else:
        patch = t.default_patch or PATCH_2D
    batch = t.default_batch_size
    if spatial_dims == 3 and not t.direct_model and not _on_gpu(device_type):
        batch = min(batch, BATCH_3D_CPU)
    return TrainConfig(
        task=t.name, model=model, model_config=t.default_model_config(spatial_dims, device_type, model),
        spatial_dims=spatial_dims, batch_size=batch, patch_size=patch,
        learning_rate=t.default_learning_rate or LEARNING_RATE, preview_every=PREVIEW_EVERY,
    )


def _on_gpu(device_type: str) -> bool:
    """Whether ``device_type`` ("cpu", "cuda", "mps", "auto") trains on a GPU."""
    if device_type == "auto":
        from .runtime.device import resolve_device

        return resolve_device("auto").type in ("cuda", "mps")
    return device_type in ("cuda", "mps")


def resume_config(saved: dict[str, Any], **changes: Any) -> TrainConfig:
    """The configuration of a resumed run: the checkpoint's ``train_config``, with ``changes`` (e.g. a new budget).

    The machine's settings (:data:`MACHINE_FIELDS`) are the defaults, not the
    checkpoint's, unless ``changes`` gives them: a run stopped on a GPU resumes on
    a laptop.
    """
    defaults = {name: getattr(TrainConfig, name) for name in MACHINE_FIELDS}
    return TrainConfig.from_dict(dict(saved, **dict(defaults, **changes))).validate()


def resolve(config: TrainConfig, *, spatial_shape: tuple[int, ...], device: str = "cpu",
            architecture: dict[str, Any] | None = None) -> TrainConfig:
    """``config`` with the task's defaults filled in, for an image of ``spatial_shape`` on ``device``.

    Training calls this once, when it knows the layout and the device; the model
    file stores the result, so a resumed run and the model card see the values used.

    Parameters
    ----------
    spatial_shape
        The model's spatial dims of the training image (``(Y, X)`` or ``(Z, Y, X)``).
    architecture
        The model options of a checkpoint training starts from (fine-tuning,
        resuming): used exactly, since the weights must fit them.
    """
    from .models import list_models, model_entry
    from .tasks import get_task

    config.validate()
    task = get_task(config.task)
    model = config.model or task.default_model
    if model_entry(model).kind != task.model_kind:
        raise ConfigError(f"{model!r} cannot do task {task.name!r}; choose one of "
                          f"{', '.join(list_models(task.model_kind))} (default {task.default_model!r})",
                          field="model")
    spatial_dims = len(spatial_shape)
    suggested = suggest(task.name, spatial_dims=spatial_dims, device=device, model=model)
    filled = {name: getattr(suggested, name) for name in TASK_DECIDED if getattr(config, name) is None}
    if architecture is not None:
        model_config = dict(architecture)
    else:
        model_config = dict(suggested.model_config, **config.model_config)
        if model == "unet" and spatial_dims == 3 and "pool_z_levels" not in model_config:
            patch = config.patch_size if config.patch_size is not None else suggested.patch_size
            model_config["pool_z_levels"] = auto_z_levels(patch, spatial_shape[0], int(model_config.get("depth", 3)))
    return replace(config, **dict(filled, model=model), spatial_dims=spatial_dims, model_config=model_config).validate()


def auto_z_levels(patch_size, z_extent: int, depth: int) -> int:
    """How many U-Net levels should halve Z for this 3D patch: keep at least ~4 slices at the bottom.

    Flat patches (e.g. 8x128x128 on anisotropic stacks) pool Z fewer times than
    Y and X; the default 32x96x96 patch pools every level.
    """
    z = 32 if patch_size is None else (patch_size if isinstance(patch_size, int) else tuple(patch_size)[0])
    z = max(1, min(int(z), int(z_extent)))
    return int(min(depth, max(0, math.floor(math.log2(max(z, 1) / 4)))))
