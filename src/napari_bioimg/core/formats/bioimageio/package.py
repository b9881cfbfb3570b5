"""bioimage.io model packages (spec 0.5): write ours, read ours and compatible ones.

A package is a zip with ``rdf.yaml`` at its root plus the files it names: weights
as a PyTorch state dict (with a standalone architecture file, so that only PyTorch
is needed) and as TorchScript, test input/output tensors made by our own pipeline,
a cover image and a README. The network inside ends with its activation (class
probabilities); the percentile normalisation is declared as ``scale_range``
pre-processing. Writing needs no bioimage.io library; ``bioimageio.core`` (an
optional extra) can test the result, see :func:`run_bioimageio_test`.

Importing (:func:`load_bioimageio`) gives a :class:`.checkpoint.LoadedModel`:
our own packages come back exactly (task, post-processing such as the seeded
watershed, normalisation); other U-Net-like packages with TorchScript or
state-dict weights predict their declared output channels as a float image.
"""

from __future__ import annotations

import getpass
import hashlib
import inspect
import io
import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .... import __version__
from ...data.io import atomic_path
from ...errors import ConfigError
from ...models.unet import UNet
from ...settings.defaults import PERCENTILES
from ..checkpoint import LoadedModel
from ..traced import activation_name, apply_activation, reference_output, trace
from .files import read_weights_file

SPEC_VERSION = "0.5.4"
from .files import RDF_NAMES  # noqa: E402,F401  (public name of the package module)

CONFIG_KEY = "napari_bioimg"
PROJECT_URL = "https://github.com/napari-bioimg/napari-bioimg"
UNET_CITATION = {"text": "Ronneberger, Fischer and Brox. U-Net: Convolutional networks for biomedical image "
                         "segmentation. MICCAI 2015.", "doi": "10.1007/978-3-319-24574-4_28"}


class BioimageioUNet(UNet):
    """Our U-Net with the output activation built in, as bioimage.io tools run it.

    Its state dict has exactly the U-Net's keys, so the package's ``weights.pt`` is
    a plain U-Net state dict.
    """

    def __init__(self, activation: str = "softmax", **kwargs):
        super().__init__(**kwargs)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_activation(super().forward(x), self.activation)


def architecture_source() -> str:
    """One self-contained Python file (only PyTorch needed) defining :class:`BioimageioUNet`."""
    from ...models import layers, unet

    header = (
        f'"""U-Net of napari-bioimg {__version__} ({PROJECT_URL}), standalone: needs only PyTorch.\n\n'
        'Generated from napari_bioimg.core.models for a bioimage.io package; the callable is BioimageioUNet.\n"""\n\n'
        "from __future__ import annotations\n\nimport torch\nfrom torch import nn\n"
        "from torch.nn import functional as F\n\n\nclass ConfigError(ValueError):\n    pass\n\n\n"
        f"NORMS = {layers.NORMS!r}\n"
    )
    parts = [layers.conv, layers.norm, layers.ConvBlock, layers.BlurPool, layers.pad_to_multiple, unet._factor, unet.unet_divisor, unet.Down,
             unet.Up, unet.UNet, apply_activation, BioimageioUNet]
    bodies = []
    for obj in parts:
        lines = inspect.getsource(obj).splitlines()
        bodies.append("\n".join(line for line in lines if not line.startswith("@register_model")))
    return header + "\n\n" + "\n\n\n".join(bodies) + "\n"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file(folder: Path, name: str) -> dict[str, str]:
    return {"source": name, "sha256": _sha256(folder / name)}


def _axes(spatial_dims: int, channel_names: list[str], size: Any, halo: int | None = None) -> list[dict]:
    axes: list[dict] = [{"type": "batch"}, {"type": "channel", "channel_names": channel_names}]
    for a in ("z", "y", "x")[3 - spatial_dims:]:
        axis: dict[str, Any] = {"type": "space", "id": a, "size": size(a)}
        if halo:
            axis["halo"] = halo
        axes.append(axis)
    return axes


def _preprocessing(loaded: LoadedModel) -> list[dict]:
    norm = loaded.normalizer
    space = ["z", "y", "x"][3 - loaded.spatial_dims:]
    steps: list[dict] = [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]
    if norm.mode == "per_image":
        steps.append({"id": "scale_range", "kwargs": {"axes": space, "min_percentile": float(norm.p_low),
                                                      "max_percentile": float(norm.p_high), "eps": 1e-6}})
    else:
        scale = [max(h - lo, 1e-12) for lo, h in zip(norm.low, norm.high)]
        steps.append({"id": "scale_linear", "kwargs": {"axis": "channel", "gain": [1.0 / s for s in scale],
                                                       "offset": [-lo / s for lo, s in zip(norm.low, scale)]}})
    return steps


def _cover(loaded: LoadedModel, raw: np.ndarray, probs: np.ndarray, path: Path) -> None:
    """Input (normalised, grey) beside the prediction (labels in colour, or the output image)."""
    from skimage import io as skio
    from skimage.color import label2rgb

    x = loaded.normalizer.apply(raw)[0, 0]
    out = loaded.task.postprocess(probs[0], loaded.meta)
    if x.ndim == 3:  # 3D: the middle slice
        x, out = x[x.shape[0] // 2], out[out.shape[0] // 2] if out.ndim == 3 else out[:, out.shape[1] // 2]
    grey = np.clip(x, 0, 1)
    left = np.repeat(grey[..., None], 3, axis=-1)
    if loaded.task.output_kind == "labels":
        right = label2rgb(out, image=grey, bg_label=0, alpha=0.45, image_alpha=1.0)
    else:
        img = out if out.ndim == 2 else out[0]
        lo, hi = np.percentile(img, PERCENTILES)
        right = np.repeat(np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1)[..., None], 3, axis=-1)
    skio.imsave(path, (np.concatenate([left, right], axis=1) * 255).astype(np.uint8), check_contrast=False)


def _documentation(loaded: LoadedModel, name: str, raw_shape: tuple[int, ...], activation: str) -> str:
    card = loaded.card
    cfg, training = card.train_config, card.training
    norm = loaded.normalizer
    metrics = card.metrics
    names = loaded.meta.get("class_names") or [f"channel {i}" for i in range(loaded.out_channels)]
    space = "ZYX" if loaded.spatial_dims == 3 else "YX"
    post = {"instance": "napari-bioimg turns the probabilities into instances with a seeded watershed: seeds are "
                        f"connected regions of interior probability > {loaded.meta.get('threshold', 0.5)}, grown "
                        "over the foreground (interior + boundary > threshold); objects smaller than "
                        f"{loaded.meta.get('min_size', 0):.0f} pixels are dropped.",
            "semantic": "the predicted class of a pixel is the channel with the highest probability (class ids "
                        "start at 1)."}.get(loaded.task.name, "")
    val = "\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items()) or "| (no validation split) | |"
    size = f", {card.validation_size} {card.validation_unit}" if card.validation_size is not None else ""
    caveat = f"\n**Note:** {card.validation_caveat}.\n" if card.validation_caveat else ""
    return f"""# {name}

A {loaded.spatial_dims}D U-Net trained with [napari-bioimg]({PROJECT_URL}) {__version__} for the task
**{loaded.task.name}** ({loaded.task.description}).

## Input

One image `(batch, channel, {", ".join(space.lower())})`, {loaded.in_channels} channel(s), any size that is a
multiple of {loaded.size_divisor} along each spatial axis (the test input is {raw_shape}).
Pre-processing: per image and channel, `(x - p{norm.p_low:g}) / (p{norm.p_high:g} - p{norm.p_low:g})` with the
{norm.p_low:g}th and {norm.p_high:g}th percentiles (`scale_range`){"" if norm.mode == "per_image" else
" using the values fixed at training (`scale_linear`)"}. napari-bioimg computes the percentiles over a whole stack
at once; bioimage.io tools compute them per 2D/3D sample.

## Output

{loaded.out_channels} channel(s) `{", ".join(names)}` after a {activation} (inside the network).
Post-processing in napari-bioimg: {post or "none."}

## Training

Trained for {training.get("steps", "?")} steps ({training.get("seconds", 0):.0f} s) with batch size
{cfg.get("batch_size", "?")}, patch size {cfg.get("patch_size") or "automatic"}, optimizer {cfg.get("optimizer", "?")},
learning rate {cfg.get("learning_rate", "?")} (warm-up then cosine decay), augmentation {cfg.get("augment", "?")}.
Loss: weighted cross-entropy over the annotated pixels.

## Validation

Scores on the validation part held out from the training annotations (not an independent test set){size}:

| metric | value |
| --- | --- |
{val}
{caveat}
Validate on your own annotated images before trusting the model for measurements, for example with
`napari-bioimg evaluate --task {loaded.task.name} --pred PRED.tif --truth TRUTH.tif`.

## How to use

- napari: napari-bioimg's widget, Model ▸ Load…, pick this zip, then Predict.
- Command line: `napari-bioimg predict --model this.zip --image IMAGE.tif --out result.tif`.
- Other bioimage.io tools (bioimageio.core, deepImageJ, ilastik, ...): use the TorchScript weights.

## Limitations

Trained on the images of one project; expect errors on other microscopes, stains or scales.
"""


def export_bioimageio(loaded: LoadedModel, out: str | os.PathLike, raw: np.ndarray, *, name: str | None = None,
                      description: str | None = None, authors: list[str] | None = None,
                      license: str = "CC-BY-4.0", tags: list[str] | None = None,
                      cite: list[dict] | None = None) -> Path:
    """Write a bioimage.io model package (zip) for ``loaded``.

    ``raw`` is a real raw crop ``(1, C, *spatial)`` whose size is a multiple of the
    network's size divisor; it becomes the test input, and our own pipeline's output
    on it the test output.
    """
    if loaded.name != "unet":
        raise ConfigError(f"bioimage.io export supports U-Net models, not {loaded.name!r}; use TorchScript or ONNX")
    activation = activation_name(loaded.task)
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise ConfigError(f"a bioimage.io package is a .zip file, got {out.name}")
    name = name or f"napari-bioimg {loaded.task.name} U-Net {loaded.spatial_dims}D"
    probs = reference_output(loaded, raw)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        state = {k: v.detach().cpu().clone() for k, v in loaded.model.state_dict().items()}
        torch.save(state, d / "weights.pt")
        (d / "napari_bioimg_unet.py").write_text(architecture_source())
        torch.jit.save(trace(loaded, raw), str(d / "weights_torchscript.pt"))
        np.save(d / "test_input.npy", raw)
        np.save(d / "test_output.npy", probs.astype(np.float32))
        import tifffile

        # the same tensors in a format image viewers open
        tifffile.imwrite(d / "sample_input.tif", raw, photometric="minisblack")
        tifffile.imwrite(d / "sample_output.tif", probs.astype(np.float32), photometric="minisblack")
        _cover(loaded, raw, probs, d / "cover.png")
        (d / "README.md").write_text(_documentation(loaded, name, raw.shape, activation))
        torch_version = torch.__version__.split("+")[0]
        (d / "environment.yaml").write_text(f"name: napari-bioimg-unet\nchannels: [pytorch, conda-forge]\n"
                                            f"dependencies:\n  - python>=3.10\n  - pytorch>={torch_version}\n"
                                            "  - numpy\n")
        rdf = _rdf(loaded, d, raw, name, description, authors, license, tags, cite, activation, torch_version)
        import yaml

        (d / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True))
        with atomic_path(out) as tmp_zip, zipfile.ZipFile(tmp_zip, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for f in sorted(d.iterdir()):
                z.write(f, f.name)
    return out


def _rdf(loaded: LoadedModel, d: Path, raw: np.ndarray, name, description, authors, license, tags, cite,
         activation: str, torch_version: str) -> dict[str, Any]:
    div = loaded.size_divisor
    min_size = max(div, 32 if loaded.spatial_dims == 2 else 16)
    min_size = -(-min_size // div) * div
    card = loaded.card
    names = [str(n) for n in (loaded.meta.get("class_names") or [f"c{i}" for i in range(loaded.out_channels)])]
    arch_kwargs = dict(card.model_config, spatial_dims=loaded.spatial_dims, in_channels=loaded.in_channels,
                       out_channels=loaded.out_channels, activation=activation)
    return {
        "type": "model",
        "format_version": SPEC_VERSION,
        "name": name,
        "description": description or f"{loaded.task.description}; a {loaded.spatial_dims}D U-Net trained in "
                                      "napari with napari-bioimg.",
        "authors": [{"name": a} for a in (authors or [getpass.getuser() or "napari-bioimg user"])],
        "cite": list(cite or []) + [UNET_CITATION, {"text": "napari-bioimg", "url": PROJECT_URL}],
        "license": license,
        "tags": list(tags or []) + ["napari-bioimg", "unet", f"{loaded.spatial_dims}d", "pytorch",
                                    f"{loaded.task.name}-segmentation" if loaded.task.output_kind == "labels"
                                    else loaded.task.name],
        "documentation": "README.md",
        "covers": ["cover.png"],
        "git_repo": PROJECT_URL,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "inputs": [{
            "id": "raw",
            "description": "raw image (any intensity range)",
            "axes": _axes(loaded.spatial_dims, [f"channel{i}" for i in range(loaded.in_channels)],
                          lambda a: {"min": min_size, "step": div}),
            "test_tensor": _file(d, "test_input.npy"),
            "sample_tensor": _file(d, "sample_input.tif"),
            "data": {"type": "float32"},
            "preprocessing": _preprocessing(loaded),
        }],
        "outputs": [{
            "id": "probabilities",
            "description": f"{activation} output: {', '.join(names)}",
            "axes": _axes(loaded.spatial_dims, names, lambda a: {"tensor_id": "raw", "axis_id": a},
                          halo=min(16, min_size // 4)),
            "test_tensor": _file(d, "test_output.npy"),
            "sample_tensor": _file(d, "sample_output.tif"),
            "data": {"type": "float32", "range": [0.0, 1.0] if activation != "identity" else [None, None]},
        }],
        "weights": {
            "pytorch_state_dict": {
                **_file(d, "weights.pt"),
                "architecture": {**_file(d, "napari_bioimg_unet.py"), "callable": "BioimageioUNet",
                                 "kwargs": arch_kwargs},
                "pytorch_version": torch_version,
                "dependencies": _file(d, "environment.yaml"),
            },
            "torchscript": {**_file(d, "weights_torchscript.pt"), "pytorch_version": torch_version,
                            "parent": "pytorch_state_dict"},
        },
        "config": {
            "bioimageio": {"reproducibility_tolerance": [{"relative_tolerance": 1e-3, "absolute_tolerance": 1e-4,
                                                          "mismatched_elements_per_million": 100}]},
            CONFIG_KEY: {"version": __version__, "model": {"name": card.model, "config": card.model_config},
                         "task": {"name": loaded.task.name, "meta": loaded.meta},
                         "normalizer": loaded.normalizer.to_dict(), "data": card.data(), "metrics": card.metrics,
                         "validation": {"size": card.validation_size, "unit": card.validation_unit},
                         "train_config": card.train_config},
        },
    }


def load_ours(rdf: dict, folder: Path, device, origin: Path) -> LoadedModel:
    from ...data.normalize import Normalizer
    from ..checkpoint import build_checkpoint, instantiate

    cfg = rdf["config"][CONFIG_KEY]
    state = torch.load(io.BytesIO(read_weights_file(folder, rdf["weights"]["pytorch_state_dict"])),
                       map_location="cpu", weights_only=True)
    data = cfg["data"]
    validation = cfg.get("validation") or {}
    ckpt = build_checkpoint(
        model_name=cfg["model"]["name"], model_config=cfg["model"]["config"], state_dict=state,
        task=cfg["task"]["name"], task_meta=cfg["task"]["meta"], normalizer=Normalizer.from_dict(cfg["normalizer"]),
        axes=data["axes"], spatial_dims=int(data["spatial_dims"]), in_channels=int(data["in_channels"]),
        out_channels=int(data["out_channels"]), temporal_context=int(data.get("temporal_context", 0)),
        metrics=cfg.get("metrics"), train_config=cfg.get("train_config"),
        validation=validation if validation.get("size") is not None else None,
        extra={"bioimageio": {"name": rdf.get("name"), "source": str(origin)}},
    )
    return instantiate(ckpt, device)


def run_bioimageio_test(path: str | os.PathLike, weight_format: str | None = None):
    """Run bioimageio.core's own model test (offline); returns its ValidationSummary.

    Raises :class:`ConfigError` when bioimageio.core is not installed.
    """
    try:
        from bioimageio.core import test_model
    except ImportError:
        raise ConfigError("testing a bioimage.io package needs bioimageio.core: pip install bioimageio.core") from None
    return test_model(str(path), weight_format=weight_format, devices=["cpu"])
