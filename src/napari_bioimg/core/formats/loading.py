"""Loading a model from any source: our ``.pt`` file, a bioimage.io package, an in-memory checkpoint."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from ..errors import CheckpointError
from .bioimageio.files import is_bioimageio_source, package_folder, read_rdf
from .bioimageio.foreign import load_foreign
from .bioimageio.package import CONFIG_KEY, load_ours
from .builtins import is_builtin
from .checkpoint import LoadedModel, ModelCard, check_checkpoint, instantiate, load_checkpoint


def load_bioimageio(path: str | os.PathLike, device: str | torch.device = "auto") -> LoadedModel:
    """Load a bioimage.io model package (zip, folder or rdf file) ready to predict."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model package not found: {path}")
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        path = path.parent
    tmp = Path(tempfile.mkdtemp(prefix="napari-bioimg-package-"))
    try:
        folder = package_folder(path, tmp)
        rdf, rdf_path = read_rdf(folder)
        if rdf.get("type") != "model":
            raise CheckpointError(f"{path.name} describes a {rdf.get('type')!r}, not a model")
        if CONFIG_KEY in (rdf.get("config") or {}) and "pytorch_state_dict" in (rdf.get("weights") or {}):
            return load_ours(rdf, rdf_path.parent, device, path)
        return load_foreign(rdf, rdf_path.parent, device, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_model(path_or_ckpt: str | os.PathLike | dict, device: str | torch.device = "auto") -> LoadedModel:
    """Load a model file, a built-in (``"builtin:nuclei-2d"``, :mod:`.builtins`), a bioimage.io package
    (``.zip``, folder or ``rdf.yaml``) or an in-memory checkpoint.

    A checkpoint's ``state_dict`` is what predicts: the best weights by validation
    score when training had a validation split, else the last ones.
    """
    if isinstance(path_or_ckpt, LoadedModel):
        return path_or_ckpt
    if not isinstance(path_or_ckpt, dict):
        if not is_builtin(path_or_ckpt) and is_bioimageio_source(path_or_ckpt):
            return load_bioimageio(path_or_ckpt, device)
    ckpt = path_or_ckpt if isinstance(path_or_ckpt, dict) else load_checkpoint(path_or_ckpt)
    return instantiate(check_checkpoint(ckpt), device)


def read_card(path: str | os.PathLike) -> ModelCard:
    """What a model file or a bioimage.io package says about its model (a bad or missing file raises
    :class:`CheckpointError`): for showing a model, and for checking a path before work starts."""
    if not is_builtin(path) and is_bioimageio_source(path):
        return load_bioimageio(path, "cpu").card
    return ModelCard.of(load_checkpoint(path))
