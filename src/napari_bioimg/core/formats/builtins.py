"""Built-in models (``builtin:NAME``): model files the project made from simulated images, in the package.

The files live in ``napari_bioimg/zoo/weights/NAME.pt``; ``python -m napari_bioimg.zoo build NAME``
remakes one (:mod:`napari_bioimg.zoo`). Nothing is downloaded: a built-in that was not built into this
installation is reported as missing.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CheckpointError

PREFIX = "builtin:"
BUILTINS: dict[str, str] = {
    "nuclei-2d": "instance segmentation of fluorescent nuclei, 2D",
    "nuclei-3d": "instance segmentation of fluorescent nuclei, 3D stacks (anisotropic Z allowed)",
    "denoise-2d": "self-supervised (blind-spot) denoiser of fluorescence images, 2D",
    "objects": "object encoder: crops of objects to features (embeddings, classification start)",
}
"""Every built-in's name and what it does (whether or not its weights are installed)."""
TASKS: dict[str, str] = {"nuclei-2d": "instance", "nuclei-3d": "instance", "denoise-2d": "denoise",
                         "objects": "classify"}
"""The task each built-in predicts and fine-tunes."""


def weights_dir() -> Path:
    """The folder the built-ins' model files are installed in."""
    return Path(__file__).resolve().parents[2] / "zoo" / "weights"


def is_builtin(source: object) -> bool:
    """Whether ``source`` names a built-in (``"builtin:NAME"``)."""
    return isinstance(source, str) and source.startswith(PREFIX)


def available() -> list[str]:
    """Names of the built-ins whose weights are installed, in catalogue order."""
    folder = weights_dir()
    return [name for name in BUILTINS if (folder / f"{name}.pt").is_file()]


def for_task(task: str) -> list[str]:
    """Installed built-ins that start the task ``task`` (``"builtin:NAME"``)."""
    return [PREFIX + name for name in available() if TASKS.get(name) == task]


def builtin_path(source: str | os.PathLike) -> Path:
    """The model file of ``"builtin:NAME"`` (or of a bare ``NAME``); an unknown or missing one raises
    :class:`CheckpointError` listing the names."""
    name = str(source)
    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    have = available()
    if name not in BUILTINS:
        raise CheckpointError(f"unknown built-in model {name!r}; the built-ins are: "
                              + (", ".join(f"{PREFIX}{n}" for n in have) or "none installed"))
    path = weights_dir() / f"{name}.pt"
    if not path.is_file():
        raise CheckpointError(f"the built-in model {PREFIX}{name} is not installed in this copy of napari-bioimg "
                              f"(installed: {', '.join(PREFIX + n for n in have) or 'none'}); "
                              f"make it with: python -m napari_bioimg.zoo build {name}")
    return path
