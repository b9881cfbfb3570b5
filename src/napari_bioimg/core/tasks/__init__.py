"""Task registry: ``list_tasks()`` and ``get_task(name)``."""

from __future__ import annotations

from ..errors import ConfigError
from .base import Problem, Task
from .classify import ClassifyTask, ClassPrediction, ImageClassifyTask
from .denoise import DenoiseTask
from .restore import ReconstructTask, RestoreTask
from .segmentation import InstanceTask, SemanticTask

_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    _TASKS[task.name] = task
    return task


def list_tasks() -> list[str]:
    return list(_TASKS)


def find_task(name: str | None) -> Task | None:
    """The registered task called ``name``; ``None`` for another (a foreign model's task) or no name."""
    return _TASKS.get(name) if name else None


def get_task(name: str) -> Task:
    try:
        return _TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; available: {', '.join(_TASKS)}") from None


register_task(InstanceTask())
register_task(SemanticTask())
register_task(ClassifyTask())
register_task(ImageClassifyTask())
register_task(DenoiseTask())
register_task(RestoreTask())
register_task(ReconstructTask())

__all__ = ["ClassPrediction", "Problem", "Task", "find_task", "get_task", "list_tasks", "register_task"]
