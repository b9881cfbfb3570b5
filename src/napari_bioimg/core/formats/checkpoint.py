"""Model files: weights + config + normalisation + class names + metrics, written atomically.

``state_dict`` holds the weights used to predict (the best by validation score
when training had a validation split); training also stores ``last_state_dict``
(when it differs) and a ``resume`` section so a run can continue exactly (see
:mod:`.resume`).

The file is a ``torch.save`` dict of plain Python values and tensors only, so it
loads with ``torch.load(weights_only=True)`` (no arbitrary code runs on load).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ... import __version__
from ..data.normalize import Normalizer
from ..errors import CheckpointError, ConfigError
from ..models import ModelProtocol, get_model, model_protocol
from ..runtime.device import resolve_device
from ..tasks import Task, get_task

FORMAT = "napari-bioimg"
FORMAT_VERSION = 2
"""2: every file has its ``training``, ``metrics``, ``history`` and ``train_config`` sections and
``data.temporal_context`` (version 1 files could lack them; :func:`migrate` fills them in)."""
REQUIRED = ("format", "format_version", "model", "state_dict", "task", "normalizer", "data")


@dataclass(frozen=True)
class ModelCard:
    """What a model file says about its model: the typed view front ends read (never the nested dict).

    Made by :meth:`of` from a checkpoint dict (ours, or the one an imported bioimage.io
    package is wrapped in).
    """

    task: str
    model: str
    model_config: dict[str, Any]
    spatial_dims: int
    axes: str
    in_channels: int
    out_channels: int
    temporal_context: int = 0
    class_names: tuple[str, ...] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    validation_size: int | None = None
    """How many items the validation metrics were computed on (``None``: not recorded, older files)."""
    validation_unit: str | None = None
    """What :attr:`validation_size` counts: ``"objects"``, ``"pixels"``, ``"frames"``."""
    steps: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    train_config: dict[str, Any] = field(default_factory=dict)
    validation_report: dict[str, Any] | None = None
    package_name: str | None = None
    """The bioimage.io package's name, when the model came from one."""
    foreign: bool = False
    """True for another tool's bioimage.io package: it predicts, but cannot be trained or re-exported by us."""
    resumable: bool = False
    """The file holds the training state to continue a stopped run exactly."""
    task_meta: dict[str, Any] = field(default_factory=dict)
    """The task's own values (class names, thresholds, object sizes, ...)."""
    normalizer: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    """The whole ``training`` section (steps, seconds, last loss, best step, ...)."""
    package: dict[str, Any] | None = None
    """The ``bioimageio`` section of a model loaded from a package."""
    version: str | None = None
    """napari-bioimg version that wrote the file."""
    created: str | None = None
    builtin: dict[str, Any] | None = None
    """A built-in model's card (``builtin:NAME``): how it was made (generator version and settings, steps,
    seconds, scores, the object diameters it was trained on); ``None`` for other models."""

    @classmethod
    def of(cls, ckpt: dict[str, Any]) -> ModelCard:
        data, task, training = ckpt["data"], ckpt["task"], ckpt.get("training") or {}
        meta = task.get("meta") or {}
        names = meta.get("class_names")
        package = ckpt.get("bioimageio")
        validation = ckpt.get("validation") or {}
        return cls(
            task=str(task["name"]), model=str(ckpt["model"]["name"]), model_config=dict(ckpt["model"].get("config", {})),
            spatial_dims=int(data["spatial_dims"]), axes=str(data["axes"]), in_channels=int(data["in_channels"]),
            out_channels=int(data["out_channels"]), temporal_context=int(data.get("temporal_context", 0)),
            class_names=tuple(str(n) for n in names) if names else None,
            metrics={k: float(v) for k, v in (ckpt.get("metrics") or {}).items() if isinstance(v, (int, float))},
            validation_size=None if validation.get("size") is None else int(validation["size"]),
            validation_unit=validation.get("unit"),
            steps=int(training.get("steps", 0)), seconds=float(training.get("seconds", 0.0)),
            stopped_early=bool(training.get("stopped_early", False)),
            train_config=dict(ckpt.get("train_config") or {}), validation_report=meta.get("validation_report"),
            package_name=(package or {}).get("name"), foreign=task["name"] == "bioimageio",
            resumable="resume" in ckpt, task_meta=dict(meta), normalizer=dict(ckpt.get("normalizer") or {}),
            training=dict(training), package=dict(package) if package else None,
            version=ckpt.get("version"), created=ckpt.get("created"),
            builtin=dict(ckpt["builtin"]) if isinstance(ckpt.get("builtin"), dict) else None,
        )

    @property
    def trainable(self) -> bool:
        """Whether training can continue from this model (ours, not another tool's package)."""
        return not self.foreign

    @property
    def image_channels(self) -> int:
        """Channels of the images the model takes (its inputs hold 2k+1 frames of them with temporal context)."""
        return int(self.task_meta.get("image_channels") or self.in_channels // (2 * self.temporal_context + 1))

    @property
    def validation_caveat(self) -> str | None:
        """A warning to show beside the metrics when the validation set was too small to trust them."""
        from ..metrics import validation_caveat

        return validation_caveat(self.validation_size, self.validation_unit)

    def summary(self) -> str:
        """One line for a status bar or ``napari-bioimg info``."""
        if self.foreign:
            return (f"bioimage.io model {self.package_name!r}: predicts {self.out_channels} channel(s) "
                    "as an image")
        dims = "3D" if self.spatial_dims == 3 else "2D"
        return f"{self.model} ({dims}) for {self.task}"

    def data(self) -> dict[str, Any]:
        """The checkpoint's ``data`` section: layout and channels of the training image."""
        return {"axes": self.axes, "spatial_dims": self.spatial_dims, "in_channels": self.in_channels,
                "out_channels": self.out_channels, "temporal_context": self.temporal_context}

    def describe(self) -> dict[str, Any]:
        """Everything the file says about its model, as plain JSON-ready sections (``napari-bioimg info``)."""
        info: dict[str, Any] = {
            "version": self.version, "created": self.created,
            "model": {"name": self.model, "config": self.model_config},
            "task": {"name": self.task, "meta": self.task_meta},
            "data": self.data(), "normalizer": self.normalizer, "metrics": self.metrics,
            "training": self.training,
        }
        if self.validation_size is not None:
            info["validation"] = {"size": self.validation_size, "unit": self.validation_unit}
        if self.package is not None:
            info["bioimageio"] = self.package
        if self.builtin is not None:
            info["builtin"] = self.builtin
        info["resumable"] = self.resumable
        return {k: v for k, v in info.items() if v is not None}


def migrate(ckpt: dict[str, Any]) -> dict[str, Any]:
    """Bring a checkpoint of an older format version up to :data:`FORMAT_VERSION` (in place; returned)."""
    version = int(ckpt.get("format_version", 1))
    if version < 2:
        ckpt.setdefault("metrics", {})
        ckpt.setdefault("history", [])
        ckpt.setdefault("train_config", {})
        ckpt.setdefault("training", {"steps": len(ckpt["history"]), "seconds": 0.0, "stopped_early": False})
        ckpt["data"].setdefault("temporal_context", 0)
    ckpt["format_version"] = FORMAT_VERSION
    return ckpt


def build_checkpoint(*, model_name: str, model_config: dict, state_dict: dict | None, task: str, task_meta: dict,
                     normalizer: Any, axes: str, spatial_dims: int, in_channels: int, out_channels: int,
                     temporal_context: int = 0, metrics: dict | None = None, history: list | None = None,
                     train_config: dict | None = None, training: dict | None = None,
                     validation: dict | None = None, extra: dict | None = None) -> dict[str, Any]:
    """Assemble a checkpoint dict: the one place model files (and imported packages' wrappers) are made.

    ``normalizer`` is a :class:`~.data.normalize.Normalizer` or anything with a
    ``to_dict()`` (an imported package's pre-processing); ``state_dict`` is ``None``
    for networks whose weights live elsewhere (another tool's package).
    ``validation`` is ``{"size": n, "unit": "objects" | "pixels" | "frames"}``:
    what the metrics were computed on.
    """
    ckpt = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model": {"name": model_name, "config": dict(model_config)},
        "state_dict": {k: v.detach().cpu().clone() for k, v in (state_dict or {}).items()},
        "task": {"name": task, "meta": task_meta},
        "normalizer": normalizer.to_dict() if hasattr(normalizer, "to_dict") else dict(normalizer),
        "data": {"axes": axes, "spatial_dims": int(spatial_dims), "in_channels": int(in_channels),
                 "out_channels": int(out_channels), "temporal_context": int(temporal_context)},
        "metrics": dict(metrics or {}),
        "history": list(history or []),
        "train_config": dict(train_config or {}),
        "training": dict(training or {"steps": len(history or []), "seconds": 0.0, "stopped_early": False}),
    }
    if validation is not None:
        ckpt["validation"] = dict(validation)
    if extra:
        ckpt.update(extra)
    return ckpt


def save_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write atomically: a temporary file in the same folder, fsync, then rename over ``path``.

    A crash or a full disk never leaves a half-written model where a good one was.
    """
    from ..data.io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a model file (or a built-in, ``"builtin:NAME"``); raise :class:`CheckpointError` with a
    clear message."""
    from .builtins import builtin_path, is_builtin

    if is_builtin(path):
        path = builtin_path(path)  # type: ignore[arg-type]
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a model file (.pt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for bad files
        raise CheckpointError(
            f"{path.name} is not a readable napari-bioimg model (corrupt, truncated, or another format): "
            f"{type(err).__name__}"
        ) from None
    return check_checkpoint(ckpt, str(path.name))


def check_checkpoint(ckpt: Any, name: str = "checkpoint") -> dict[str, Any]:
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{name} was not written by napari-bioimg (no '{FORMAT}' header)")
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{name} is incomplete: missing {', '.join(missing)}")
    if int(ckpt["format_version"]) > FORMAT_VERSION:
        raise CheckpointError(
            f"{name} uses model format {ckpt['format_version']}, newer than this napari-bioimg "
            f"({__version__}, format {FORMAT_VERSION}); update napari-bioimg"
        )
    return migrate(ckpt)


@dataclass
class LoadedModel:
    """A model ready to predict, with everything needed to reproduce training's pre/post-processing."""

    model: nn.Module
    task: Task
    meta: dict[str, Any]
    normalizer: Normalizer
    spatial_dims: int
    in_channels: int
    out_channels: int
    axes: str
    device: torch.device
    checkpoint: dict[str, Any]
    fast: dict[Any, Any] = field(default_factory=dict, repr=False)
    """Inference-ready copies of the model, by options (filled by :func:`..inference.runner.model_fn`)."""
    protocol: ModelProtocol | None = None
    """Sizes the network takes and the tile it prefers: its registry entry's (:func:`..models.model_protocol`)
    when not given (an imported package gives its own)."""

    def __post_init__(self) -> None:
        if self.protocol is None:
            card = self.card
            self.protocol = model_protocol(card.model, spatial_dims=card.spatial_dims, in_channels=card.in_channels,
                                           out_channels=card.out_channels, **card.model_config)

    @property
    def name(self) -> str:
        return self.card.model

    @cached_property
    def card(self) -> ModelCard:
        """The typed view of the model's checkpoint."""
        return ModelCard.of(self.checkpoint)

    @property
    def temporal_context(self) -> int:
        """Neighbouring frames fed as channels on each side (0 = none)."""
        return self.card.temporal_context

    @property
    def image_channels(self) -> int:
        """Channels of the images the model takes (see :attr:`ModelCard.image_channels`)."""
        return self.card.image_channels

    @property
    def size_divisors(self) -> int | tuple[int, ...]:
        """Sizes the network needs: an int, or one per spatial dim (anisotropic 3D U-Net)."""
        d = self.protocol.size_divisor
        return int(d) if isinstance(d, int) else tuple(int(v) for v in d)

    @property
    def size_divisor(self) -> int:
        """One size that suits every spatial dim (the largest per-dim divisor; they are powers of two)."""
        d = self.size_divisors
        return d if isinstance(d, int) else max(d)


def instantiate(ckpt: dict[str, Any], device: str | torch.device = "cpu") -> LoadedModel:
    """Build the network described by a checkpoint dict and load its weights."""
    card = ModelCard.of(ckpt)
    try:
        task = get_task(card.task)
        model = get_model(card.model, spatial_dims=card.spatial_dims, in_channels=card.in_channels,
                          out_channels=card.out_channels, **card.model_config)
    except ConfigError as err:
        raise CheckpointError(f"the model file needs something this version lacks: {err}") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"the weights do not fit the described network (incompatible file): {first}") from None
    dev = resolve_device(device)
    model.to(dev).eval()
    return LoadedModel(model, task, dict(card.task_meta), Normalizer.from_dict(card.normalizer), card.spatial_dims,
                       card.in_channels, card.out_channels, card.axes, dev, ckpt)
