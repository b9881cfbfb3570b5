"""What a task is: how annotations become targets, the loss, and post-processing.

A :class:`Task` is stateless and registered by name. ``make_problem`` binds it to one
image and its annotations, giving a :class:`Problem` that the generic training loop
in :mod:`..training` drives: it samples batches, computes the loss and validates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..data.patches import Sampler, ValRegion
from ..errors import ConfigError, InputError

if TYPE_CHECKING:
    from ..data.dataset import DataSet
    from ..settings.train import TrainConfig


class Task:
    """Base class. Subclasses set the class attributes and override the hooks."""

    name: str = ""
    description: str = ""
    output_kind: str = "labels"
    """``"labels"`` (integer label image) or ``"image"`` (float image)."""
    needs_annotations: bool = True
    inputs: tuple[str, ...] = ("image", "labels")
    """What the user provides: ``"image"``, ``"labels"`` (annotations in the image's pixels),
    ``"objects"`` (an instance label image), ``"classes"`` (a class per object or frame) and
    ``"target"`` (a clean image of the same pixels, passed as ``extra["target"]``)."""
    instance_labels: bool = False
    """``postprocess`` numbers objects that may span many pixels (instances): prediction in
    blocks then labels with a margin and makes ids globally unique (see :mod:`..inference.blocks`).
    ``False`` means ``postprocess`` works pixel by pixel."""
    model_kind: str = "dense"
    """The model family's kind in the registry (:func:`..models.list_models`): ``"dense"`` or ``"classifier"``."""
    default_model: str = "unet"
    default_spatial_dims: int | None = None
    """Model dimensionality when the config leaves it open (``None``: 3 if the image has Z)."""
    default_batch_size: int = 8
    default_learning_rate: float | None = None
    """Suggested learning rate (``None``: the front end's general default)."""
    default_patch: int | None = None
    """Suggested 2D patch side (``None``: the front end's general default)."""
    result_label: str = ""
    """How a result layer is tagged, e.g. ``"denoised"`` (``""``: the model's name)."""

    # Capabilities: what the engine and the front ends ask a task (never its name). The two kinds of
    # task set the first; each task declares the rest (tests/core/tasks/test_task_types.py states them).
    predicts_items: bool = False
    """The model runs on the task's own items (object crops, whole frames) and gives one class per item,
    instead of a per-pixel result over overlapping tiles: :class:`.items.ItemTask` (else :class:`.dense.DenseTask`).
    Such a task trains without a patch size, validates and previews through its ``*_direct`` hooks and predicts
    through :meth:`~.items.ItemTask.predict_direct`."""
    wants_scribbles: bool = False
    """Annotations are a few painted strokes per class (not whole objects): a mask of many ids is suspect."""
    supports_live: bool = False
    """Can train while the user paints (or names classes): see :mod:`..live`."""
    classifies_objects: bool = False
    """Gives a class to each object of a label image from a crop around it (what explanations and a
    classifier's embedding need)."""

    def pretrain_refusal(self) -> str | None:
        """Why self-supervised pretraining (:mod:`..training.pretrain`) does not apply, or ``None`` when it does."""
        return None

    def export_refusal(self) -> str | None:
        """Why models of this task cannot be exported (:mod:`..formats.export`), or ``None`` when they can."""
        return None

    def default_model_config(self, spatial_dims: int, device_type: str = "cpu",
                             model: str | None = None) -> dict[str, Any]:
        """Options for ``model`` (the task's default model when ``None``) used when the user gives none.

        Small on a CPU, wider where a GPU makes width cheap.
        """
        return {}

    def make_problem(self, inputs: np.ndarray, annotations: np.ndarray | None, config: TrainConfig,
                     rng: np.random.Generator, divisor: int, extra: dict | None = None) -> Problem:
        raise NotImplementedError  # every registered task overrides this

    def make_dataset_problem(self, ds: DataSet, config: TrainConfig, rng: np.random.Generator,
                             divisor: int) -> Problem:
        """The task bound to a data set (:mod:`.sets`): batches drawn across its images with ``rng``."""
        raise ConfigError(f"task {self.name!r} trains on one image (or stack) at a time, not on a set of images",
                          field="task")

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

    def calibration_regions(self, problem: Problem) -> list[ValRegion]:
        """Where post-processing settings are chosen once training ends (see :mod:`.calibration`); none here."""
        return []

    def calibrate(self, problem: Problem, regions: list[ValRegion], outputs: list[np.ndarray],
                  fixed: Any = (), stop: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Post-processing settings chosen on ``regions`` given the final model's activated ``outputs`` there;
        returned as updates of the task meta stored with the model. ``fixed``: options the user set; ``stop``:
        true when the search must end (the run's time limit) with the best settings found so far."""
        return {}


@dataclass
class Problem:
    """A task bound to one training set."""

    task: Task
    inputs: np.ndarray | None
    """The normalised image ``(N, C, *spatial)``; ``None`` for a data set (read patch by patch)."""
    sampler: Sampler
    """Where batches come from (:class:`~..data.patches.Sampler`): one image's patches, a data set's, or a task's
    items."""
    out_channels: int
    meta: dict[str, Any]
    val_regions: list[ValRegion] = field(default_factory=list)
    val_truth: np.ndarray | None = None
    n_train_pixels: int = 0
    n_val_pixels: int = 0
    in_channels: int | None = None
    """Network input channels when they differ from the image's (e.g. image + object mask)."""
    unit: str = "pixels"
    """What ``n_train_pixels``/``n_val_pixels`` count (``"pixels"``, ``"objects"``, ``"frames"``)."""
    notices: list[str] = field(default_factory=list)
    """Warnings about the annotations, shown to the user when training starts."""
    val_inputs: dict[int, np.ndarray] | None = None
    """Per held-apart sample, the ``(C, *spatial)`` input validation runs on instead
    of the image (e.g. with blind-spot masked pixels)."""
    val_data: Any = None
    """Whatever else the task's ``validate`` needs."""
    select_best: bool = True
    """Keep the weights with the best validation score (else the final ones): off when
    the score is too noisy to rank late checkpoints."""
    val_size: int | None = None
    """How many items the validation scores are computed on (``None``: ``n_val_pixels``)."""
    val_unit: str | None = None
    """What ``val_size`` counts (``None``: ``unit``)."""

    def __post_init__(self) -> None:
        if self.val_size is None:
            self.val_size = int(self.n_val_pixels)
        if self.val_unit is None:
            self.val_unit = self.unit

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
