"""GUI-free engine: models, data, training, prediction, metrics and checkpoints.

Nothing in this package imports Qt, napari or magicgui (a test enforces it), so it
runs the same in a notebook, on the command line, or on a dask worker.
"""

from .config import TrainConfig
from .control import Control
from .data.collect import collect
from .data.dataset import DataSet, make_sample
from .errors import BioimgError, CheckpointError, ConfigError, InputError
from .inference.predict import predict, predict_sync
from .models import get_model, list_models
from .tasks import get_task, list_tasks
from .training.loop import train, train_sync

__all__ = [
    "BioimgError",
    "CheckpointError",
    "ConfigError",
    "Control",
    "DataSet",
    "InputError",
    "TrainConfig",
    "collect",
    "get_model",
    "get_task",
    "list_models",
    "list_tasks",
    "make_sample",
    "predict",
    "predict_sync",
    "train",
    "train_sync",
]
