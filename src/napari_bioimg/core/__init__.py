"""GUI-free engine: models, data, training, prediction, metrics and checkpoints.

Nothing in this package imports Qt, napari or magicgui (a test enforces it), so it
runs the same in a notebook, on the command line, or on a dask worker.

The names below are imported when first used (``from napari_bioimg.core import train``
works as usual): importing a light room such as :mod:`.settings` (the declarations the
command line's ``--help`` reads) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the module that defines it.
_EXPORTS = {
    "BioimgError": ".errors", "CheckpointError": ".errors", "ConfigError": ".errors", "InputError": ".errors",
    "Control": ".control", "DataSet": ".data.dataset", "make_sample": ".data.dataset", "collect": ".data.collect",
    "PredictConfig": ".settings.predict", "PredictSource": ".inference.source", "TrainConfig": ".settings.train",
    "get_model": ".models", "list_models": ".models", "get_task": ".tasks", "list_tasks": ".tasks",
    "predict": ".inference.predict", "predict_sync": ".inference.predict",
    "train": ".training.loop", "train_sync": ".training.loop",
}
__all__ = [
    "BioimgError", "CheckpointError", "ConfigError", "Control", "DataSet", "InputError", "PredictConfig",
    "PredictSource", "TrainConfig", "collect", "get_model", "get_task", "list_models", "list_tasks", "make_sample",
    "predict", "predict_sync", "train", "train_sync",
]

if TYPE_CHECKING:  # for type checkers and editors only
    from .control import Control
    from .data.collect import collect
    from .data.dataset import DataSet, make_sample
    from .errors import BioimgError, CheckpointError, ConfigError, InputError
    from .inference.predict import predict, predict_sync
    from .inference.source import PredictSource
    from .models import get_model, list_models
    from .settings.predict import PredictConfig
    from .settings.train import TrainConfig
    from .tasks import get_task, list_tasks
    from .training.loop import train, train_sync


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
