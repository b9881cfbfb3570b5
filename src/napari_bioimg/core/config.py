"""Training configuration at work: the task's suggestions, filled-in defaults, resumed runs.

The settings themselves are declared once in :mod:`.settings.train` (:class:`TrainConfig`,
with each field's type, default, bounds and help); this module decides what the task
and the device add: :func:`suggest` gives a front end the values to show before the user
changes anything, :func:`resolve` fills in the task's fields when training starts (it
knows the model's dimensionality and the device then), :func:`resume_config` continues
a stopped run. A refused value raises a :class:`ConfigError` whose ``field`` names the
setting and whose message says how to fix it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from .errors import ConfigError
from .settings.defaults import (
    BATCH_3D_CPU,
    LEARNING_RATE,
    OPTIMIZERS,
    PATCH_2D,
    PATCH_3D,
    PATCH_3D_CPU,
    PREVIEW_EVERY,
    TIME_LIMIT,
)
from .settings.train import BOUNDS, MACHINE_FIELDS, PATCH_BOUND, TASK_DECIDED, Bound, TrainConfig, check_field

__all__ = ["BATCH_3D_CPU", "BOUNDS", "LEARNING_RATE", "MACHINE_FIELDS", "OPTIMIZERS", "PATCH_2D", "PATCH_3D",
           "PATCH_3D_CPU", "PATCH_BOUND", "PREVIEW_EVERY", "TASK_DECIDED", "TIME_LIMIT", "Bound", "TrainConfig",
           "auto_z_levels", "check_field", "resolve", "resume_config", "suggest"]


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
    if t.predicts_items:
        patch = None  # crops are fitted to the objects
    elif spatial_dims == 3:
        side = t.default_patch or PATCH_2D
        big = PATCH_3D if _on_gpu(device_type) else PATCH_3D_CPU
        patch = big if side >= PATCH_2D else (16, side, side)
    else:
        patch = t.default_patch or PATCH_2D
    batch = t.default_batch_size
    if spatial_dims == 3 and not t.predicts_items and not _on_gpu(device_type):
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
