"""Export a trained model for other tools: TorchScript, ONNX, or a bioimage.io package.

Every export holds the network *with its output activation* (class probabilities
for segmentation), takes normalised float32 input shaped ``(B, C, [Z,] Y, X)`` and
comes with the metadata needed to reproduce our pre- and post-processing: a JSON
sidecar next to TorchScript/ONNX files, the ``rdf.yaml`` in a bioimage.io package
(see :mod:`.bioimageio`).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ... import __version__
from ..data.io import atomic_path
from ..errors import ConfigError, InputError
from .checkpoint import LoadedModel
from .loading import load_model
from .traced import activated, activation_name, reference_output, trace  # noqa: F401  (reference_output: public)

FORMATS = ("bioimageio", "torchscript", "onnx")
ONNX_OPSET = 17


def sample_input(loaded: LoadedModel, image: np.ndarray | None = None, axes: str | None = None,
                 max_size: int | None = None) -> np.ndarray:
    """A real raw crop ``(1, C, *spatial)`` float32 to trace and test exported files with.

    From ``image`` when given (the middle sample, a centred crop); otherwise from the
    bundled nuclei sample (one-channel models only). Sizes are multiples of the
    network's size divisor.
    """
    if image is None:
        if loaded.in_channels != 1:
            raise InputError(f"the model takes {loaded.in_channels} channels: give a sample image to export with")
        from ..._sample_data import SLICE_2D, load_nuclei_3d

        stack = load_nuclei_3d()[0]
        image, axes = (stack[SLICE_2D], "YX") if loaded.spatial_dims == 2 else (stack, "ZYX")
    from ..inference.runner import prepare
    from ..inference.source import PredictSource

    x = prepare(loaded, PredictSource.of(image, axes)).raw
    x = x[x.shape[0] // 2]
    div = loaded.size_divisor
    limits = (max_size or 256,) * 2 if loaded.spatial_dims == 2 else (min(max_size or 32, 32), *(max_size or 128,) * 2)
    box = []
    for size, limit in zip(x.shape[1:], limits):
        crop = (min(size, limit) // div) * div
        if crop < div:
            raise InputError(f"the sample image is too small to export with: {size} < {div} pixels along an axis")
        start = (size - crop) // 2
        box.append(slice(start, start + crop))
    return np.ascontiguousarray(x[(slice(None), *box)][None], dtype=np.float32)


def sidecar(loaded: LoadedModel, exported_as: str) -> dict[str, Any]:
    """Metadata that lets another program reproduce our pre- and post-processing."""
    card = loaded.card
    space = "ZYX" if loaded.spatial_dims == 3 else "YX"
    norm = loaded.normalizer.to_dict()
    return {
        "format": "napari-bioimg-export",
        "exported_as": exported_as,
        "napari_bioimg_version": __version__,
        "model": {"name": card.model, "config": card.model_config},
        "task": {"name": loaded.task.name, "meta": loaded.meta, "output_kind": loaded.task.output_kind},
        "input": {"axes": "BC" + space, "channels": loaded.in_channels, "dtype": "float32",
                  "size_multiple_of": loaded.size_divisor if exported_as == "onnx" else 1,
                  "training_axes": loaded.axes},
        "normalization": dict(norm, formula="(x - low) / (high - low) per channel; with mode 'per_image' low/high "
                                            "are the p_low/p_high percentiles of each image, else the stored values"),
        "output": {"axes": "BC" + space, "channels": loaded.out_channels, "activation": activation_name(loaded.task),
                   "channel_names": loaded.meta.get("class_names")},
        "metrics": card.metrics,
        "validation": {"size": card.validation_size, "unit": card.validation_unit},
        "train_config": card.train_config,
    }


def _write_json(meta: dict, path: Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=float))
    return path


def export_torchscript(loaded: LoadedModel, out: str | os.PathLike, example: np.ndarray | None = None) -> Path:
    """Write a TorchScript file (``torch.jit.load``-able) and a JSON sidecar with the same stem, atomically."""
    out = Path(out)
    scripted = trace(loaded, sample_input(loaded) if example is None else example)
    with atomic_path(out) as tmp:
        torch.jit.save(scripted, str(tmp))
    _write_json(sidecar(loaded, "torchscript"), out.with_suffix(".json"))
    return out


def export_onnx(loaded: LoadedModel, out: str | os.PathLike, example: np.ndarray | None = None,
                opset: int = ONNX_OPSET) -> Path:
    """Write an ONNX file (batch and spatial sizes free, spatial sizes multiples of the size divisor) + sidecar."""
    out = Path(out)
    example = sample_input(loaded) if example is None else example
    net = activated(loaded)
    x = torch.from_numpy(loaded.normalizer.apply(example))
    names = ["batch", "channel", "z", "y", "x"] if loaded.spatial_dims == 3 else ["batch", "channel", "y", "x"]
    dynamic = {i: n for i, n in enumerate(names) if n != "channel"}
    try:
        with warnings.catch_warnings(), atomic_path(out) as tmp:
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (x,), str(tmp), dynamo=False, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": dynamic, "output": dynamic}, opset_version=opset)
    except ImportError as err:
        raise ConfigError(f"ONNX export needs the 'onnx' package: pip install onnx ({err})") from None
    _write_json(sidecar(loaded, "onnx"), out.with_suffix(".json"))
    return out


def run_onnx(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Run an exported ONNX file on normalised input with onnxruntime (CPU)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("running ONNX files needs onnxruntime: pip install onnxruntime") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": np.ascontiguousarray(x, dtype=np.float32)})[0]


def onnx_difference(loaded: LoadedModel, path: str | os.PathLike, raw: np.ndarray) -> float:
    """Largest absolute difference between onnxruntime and our pipeline on a raw crop ``(1, C, *spatial)``."""
    return float(np.abs(run_onnx(path, loaded.normalizer.apply(raw)) - reference_output(loaded, raw)).max())


def export_model(model: str | os.PathLike | dict | LoadedModel, fmt: str, out: str | os.PathLike,
                 sample: np.ndarray | None = None, sample_axes: str | None = None, **package_info) -> Path:
    """Export ``model`` as ``fmt`` (one of :data:`FORMATS`) to ``out``.

    ``sample`` (with ``sample_axes``) is a real image of the kind the model was
    trained on, used to trace the network and for the bioimage.io test tensors and
    cover; the bundled nuclei sample is used when omitted. ``package_info`` goes to
    :func:`.bioimageio.export_bioimageio` (name, authors, license, ...).
    """
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    loaded = model if isinstance(model, LoadedModel) else load_model(model, "cpu")
    refusal = loaded.task.export_refusal()
    if refusal:
        raise ConfigError(refusal)
    raw = sample_input(loaded, sample, sample_axes)
    if fmt == "torchscript":
        return export_torchscript(loaded, out, raw)
    if fmt == "onnx":
        return export_onnx(loaded, out, raw)
    from .bioimageio.package import export_bioimageio

    return export_bioimageio(loaded, out, raw, **package_info)
