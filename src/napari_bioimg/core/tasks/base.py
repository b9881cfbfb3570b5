"""What a task is: how annotations become targets, the loss, and post-processing.

A :class:`Task` is stateless and registered by name. ``make_problem`` binds it to one
image and its annotations, giving a :class:`Problem` that the generic training loop
in :mod:`..train` drives: it samples batches, computes the loss and validates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..config import TrainConfig
from ..data import PatchSampler, ValRegion
from ..errors import ConfigError, InputError


class Task:
    """Base class. Subclasses set the class attributes and override the hooks."""

    name: str = ""
    description: str = ""
    output_kind: str = "labels"
    """``"labels"`` (integer label image) or ``"image"`` (float image)."""
    needs_annotations: bool = True
    instance_labels: bool = False
    """``postprocess`` numbers objects that may span many pixels (instances): prediction in
    blocks then labels with a margin and makes ids globally unique (see :mod:`..lazy`).
    ``False`` means ``postprocess`` works pixel by pixel."""
    model_kind: str = "dense"
    default_model: str = "unet"

    def default_model_config(self, spatial_dims: int, device_type: str = "cpu") -> dict[str, Any]:
        """Model options used when the user gives none (small on CPU, wider on a GPU)."""
        return {}

    def make_problem(self, inputs: np.ndarray, annotations: np.ndarray | None, config: TrainConfig,
                     rng: np.random.Generator, divisor: int, extra: dict | None = None) -> Problem:
        raise NotImplementedError  # every registered task overrides this

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)

    def loss(self, logits: torch.Tensor, target: torch.Tensor, meta: dict) -> torch.Tensor:
        raise NotImplementedError  # every registered task overrides this

    def prepare_batch(self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator, meta: dict):
        """Hook to change a sampled batch (e.g. blind-spot masking). Default: unchanged."""
        return x, y

    def postprocess(self, outputs: np.ndarray, meta: dict) -> np.ndarray:
        """``(K, *spatial)`` activated outputs of one sample -> the result for that sample."""
        raise NotImplementedError  # every registered task overrides this

    def validate(self, problem: Problem, predictions: list[np.ndarray]) -> tuple[dict[str, float], float]:
        """Metrics on the validation regions given their activated outputs; returns (metrics, score)."""
        raise NotImplementedError  # every registered task overrides this


@dataclass
class Problem:
    """A task bound to one training set."""

    task: Task
    inputs: np.ndarray
    sampler: PatchSampler
    out_channels: int
    meta: dict[str, Any]
    val_regions: list[ValRegion] = field(default_factory=list)
    val_truth: np.ndarray | None = None
    n_train_pixels: int = 0
    n_val_pixels: int = 0

    @property
    def patch(self) -> tuple[int, ...]:
        return self.sampler.patch


def require_labels(annotations: np.ndarray | None, task: str) -> np.ndarray:
    """Check an annotation array is present, integer-valued and non-negative."""
    if annotations is None:
        raise InputError(f"task {task!r} needs an annotation (labels) layer or file")
    a = np.asarray(annotations)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise InputError("annotations must be integer label ids (found fractional or NaN values)")
        a = a.astype(np.int64)
    elif a.dtype.kind == "b":
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iu":
        raise InputError(f"annotations must be an integer label image, got dtype {a.dtype}")
    if a.size and a.min() < 0:
        raise InputError("annotations contain negative ids; label ids must be >= 0 (0 = not annotated/background)")
    return a


def check_task_config(config: dict, allowed: dict[str, tuple[float, float]]) -> dict:
    out = {}
    for key, value in config.items():
        if key not in allowed:
            raise ConfigError(f"unknown task option {key!r}; known: {', '.join(sorted(allowed)) or 'none'}")
        lo, hi = allowed[key]
        if not lo <= float(value) <= hi:
            raise ConfigError(f"task option {key} must be in [{lo}, {hi}], got {value}")
        out[key] = float(value)
    return out
