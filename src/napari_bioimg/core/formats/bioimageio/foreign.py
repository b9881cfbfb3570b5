"""Predict with bioimage.io model packages written by other tools.

Supported: one input and one output tensor with batch/channel/space axes (2D or
3D, any order), the output the same size as the input (a U-Net-like network),
TorchScript weights (preferred: no Python code from the package runs) or
PyTorch state-dict weights with their architecture file, and the standard
element-wise or per-sample pre-/post-processing steps. Both spec 0.5 and the
older 0.4 layout are read. The result is a float image of the output channels.
"""

from __future__ import annotations

import importlib
import io
import math
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...errors import CheckpointError
from ...models import ModelProtocol
from ...runtime.device import resolve_device
from ...tasks.dense import DenseTask
from ..checkpoint import LoadedModel, build_checkpoint
from .files import read_weights_file

LETTERS = {"b": "batch", "c": "channel", "z": "z", "y": "y", "x": "x"}
PRE_OPS = {"ensure_dtype", "scale_range", "zero_mean_unit_variance", "fixed_zero_mean_unit_variance",
           "scale_linear", "clip", "binarize", "sigmoid"}
POST_OPS = {"ensure_dtype", "sigmoid", "softmax", "scale_linear", "clip", "binarize"}


class ImportedOutputTask(DenseTask):
    """A foreign model's output channels, returned as a float image (not registered for training)."""

    name = "bioimageio"
    description = "Output of an imported bioimage.io model"
    output_kind = "image"
    needs_annotations = False

    def export_refusal(self) -> str | None:
        return "this model was imported from a bioimage.io package; share that package instead"

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return logits  # the package's post-processing already ran inside ForeignNet

    def postprocess(self, outputs: np.ndarray, meta: dict) -> np.ndarray:
        return outputs[0] if outputs.shape[0] == 1 else outputs


@dataclass
class TensorSpec:
    """One tensor of a package, read from either spec version."""

    axes: list[str]
    sizes: dict[str, Any]
    channels: list[str]
    ops: list[tuple[str, dict]] = field(default_factory=list)

    @property
    def space(self) -> list[str]:
        return [a for a in ("z", "y", "x") if a in self.axes]


def _v04_axes(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [LETTERS.get(ch, ch) for ch in value]
    return [LETTERS.get(str(a), str(a)) for a in value]


def _tensor(t: dict, v04: bool, kind: str) -> TensorSpec:
    if v04:
        axes = _v04_axes(t["axes"])
        shape = t.get("shape")
        if isinstance(shape, list):
            sizes = dict(zip(axes, shape))
        elif isinstance(shape, dict) and "min" in shape:
            sizes = {a: ("param", lo, st) if st else lo for a, lo, st in zip(axes, shape["min"], shape["step"])}
        elif isinstance(shape, dict) and "reference_tensor" in shape:
            if any(s != 1 for s in shape.get("scale", [])) or any(o for o in shape.get("offset", [])):
                raise CheckpointError("the output size differs from the input size: napari-bioimg supports "
                                      "U-Net-like models whose output matches the input")
            sizes = dict.fromkeys(axes, "ref")
        else:
            sizes = dict.fromkeys(axes)
        n_ch = sizes.get("channel") if isinstance(sizes.get("channel"), int) else 1
        channels = [f"channel{i}" for i in range(n_ch)]
        steps = t.get("preprocessing" if kind == "input" else "postprocessing") or []
        ops = []
        for step in steps:
            kw = dict(step.get("kwargs") or {})
            if "axes" in kw:
                kw["axes"] = _v04_axes(kw["axes"])
            if kw.get("axis"):
                kw["axis"] = LETTERS.get(kw["axis"], kw["axis"])
            name = step["name"]
            if name == "zero_mean_unit_variance" and kw.get("mode") == "fixed":
                name = "fixed_zero_mean_unit_variance"
            if kw.get("mode") == "per_dataset":
                raise CheckpointError(f"{name} with per-dataset statistics is not supported by napari-bioimg")
            if kw.get("mode") == "per_sample" and kw.get("axes") is not None:
                kw["axes"] = [a for a in kw["axes"] if a != "batch"]
            ops.append((name, kw))
        return TensorSpec(axes, sizes, channels, ops)
    axes, sizes, channels = [], {}, []
    for a in t["axes"]:
        kind_ = a.get("type")
        if kind_ not in ("batch", "channel", "space"):
            raise CheckpointError(f"axis type {kind_!r} is not supported by napari-bioimg (only batch, channel, "
                                  "space)")
        aid = a.get("id") or {"batch": "batch", "channel": "channel", "space": "x"}[kind_]
        axes.append(aid)
        size = a.get("size")
        if kind_ == "channel":
            channels = [str(c) for c in a.get("channel_names", ["channel0"])]
            size = len(channels)
        elif isinstance(size, dict) and "min" in size:
            size = ("param", int(size["min"]), int(size["step"]))
        elif isinstance(size, dict) and "axis_id" in size:
            if size.get("offset"):
                raise CheckpointError("the output size differs from the input size: napari-bioimg supports "
                                      "U-Net-like models whose output matches the input")
            size = "ref"
        sizes[aid] = size
    steps = t.get("preprocessing" if kind == "input" else "postprocessing") or []
    ops = [(s["id"], dict(s.get("kwargs") or {})) for s in steps]
    return TensorSpec(axes, sizes, channels or ["channel0"], ops)


def _along(value: Any, axis: str | None, order: list[str], ndim: int) -> np.ndarray:
    """A scalar, or per-channel values broadcast along ``axis`` of a canonical array."""
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim == 0 or axis is None:
        return arr
    shape = [1] * ndim
    shape[order.index(axis)] = arr.size
    return arr.reshape(shape)


class PackagePreprocessing:
    """The package's input pre-processing on canonical ``(N, C, *spatial)`` arrays (per-sample statistics)."""

    def __init__(self, ops: list[tuple[str, dict]], space: list[str]):
        for name, _ in ops:
            if name not in PRE_OPS:
                raise CheckpointError(f"the package's pre-processing step {name!r} is not supported by "
                                      "napari-bioimg")
        self.ops, self.order = ops, ["batch", "channel", *space]

    def apply(self, x: np.ndarray, refit: bool | None = None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        for name, kw in self.ops:
            reduce = tuple(self.order.index(a) for a in (kw.get("axes") or self.order) if a in self.order)
            if name == "scale_range":
                lo = np.percentile(x, kw.get("min_percentile", 0.0), axis=reduce, keepdims=True)
                hi = np.percentile(x, kw.get("max_percentile", 100.0), axis=reduce, keepdims=True)
                x = (x - lo) / (hi - lo + kw.get("eps", 1e-6))
            elif name == "zero_mean_unit_variance":
                x = (x - x.mean(axis=reduce, keepdims=True)) / (x.std(axis=reduce, keepdims=True)
                                                               + kw.get("eps", 1e-6))
            elif name == "fixed_zero_mean_unit_variance":
                mean = _along(kw["mean"], kw.get("axis"), self.order, x.ndim)
                std = _along(kw["std"], kw.get("axis"), self.order, x.ndim)
                x = (x - mean) / (std + kw.get("eps", 1e-6))
            elif name == "scale_linear":
                x = x * _along(kw.get("gain", 1.0), kw.get("axis"), self.order, x.ndim) + \
                    _along(kw.get("offset", 0.0), kw.get("axis"), self.order, x.ndim)
            elif name == "clip":
                x = np.clip(x, kw.get("min"), kw.get("max"))
            elif name == "binarize":
                x = (x > _along(kw["threshold"], kw.get("axis"), self.order, x.ndim)).astype(np.float32)
            elif name == "sigmoid":
                x = 1.0 / (1.0 + np.exp(-x))
        out = np.ascontiguousarray(x, dtype=np.float32)
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return out

    def to_dict(self) -> dict:
        return {"bioimageio_preprocessing": [[n, kw] for n, kw in self.ops]}


def _valid_size(size: Any, s: int) -> int:
    if isinstance(size, int):
        if s > size:
            raise ValueError(f"input size {s} exceeds the model's fixed size {size}")
        return size
    if isinstance(size, tuple):
        _, lo, step = size
        return max(lo, lo + math.ceil((s - lo) / step) * step)
    return s


class ForeignNet(nn.Module):
    """Canonical ``(B, C, *spatial)`` in and out around a package's network, with its post-processing."""

    def __init__(self, net: nn.Module, ipt: TensorSpec, out: TensorSpec):
        super().__init__()
        self.net, self.ipt, self.out = net, ipt, out
        self.canon = ["batch", "channel", *ipt.space]
        self.fixed_batch = ipt.sizes.get("batch") == 1 or "batch" not in ipt.axes
        self.preferred_tile = tuple(self._tile(ipt.sizes.get(a), 32 if (a == "z") else 256 if len(ipt.space) == 2
                                               else 128) for a in ipt.space)

    @staticmethod
    def _tile(size: Any, want: int) -> int:
        if isinstance(size, int):
            return size
        if isinstance(size, tuple):
            _, lo, step = size
            return max(lo, lo + ((want - lo) // step) * step)
        return want

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        order = list(self.canon)
        for axis in ("channel", "batch"):  # axes the network does not have are of size 1 here
            if axis not in self.ipt.axes:
                x = x.squeeze(order.index(axis))
                order.remove(axis)
        y = self.net(x.permute([order.index(a) for a in self.ipt.axes]))
        if isinstance(y, (tuple, list)):
            y = y[0]
        axes = list(self.out.axes)
        if "batch" not in axes:
            y, axes = y.unsqueeze(0), ["batch", *axes]
        if "channel" not in axes:
            y, axes = y.unsqueeze(1), [axes[0], "channel", *axes[1:]]
        return y.permute([axes.index(a) for a in self.canon])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = list(x.shape[2:])
        target = [_valid_size(self.ipt.sizes.get(a), s) for a, s in zip(self.ipt.space, spatial)]
        pad: list[int] = []
        for s, t in zip(reversed(spatial), reversed(target)):
            pad += [0, t - s]
        if any(pad):
            mode = "reflect" if all(t - s < s for s, t in zip(spatial, target)) else "replicate"
            x = F.pad(x, pad, mode=mode)
        y = torch.cat([self._run(x[i: i + 1]) for i in range(x.shape[0])]) if self.fixed_batch else self._run(x)
        y = y[(slice(None), slice(None), *(slice(0, s) for s in spatial))].float()
        return self._post(y)

    def _post(self, y: torch.Tensor) -> torch.Tensor:
        for name, kw in self.out.ops:
            if name == "sigmoid":
                y = torch.sigmoid(y)
            elif name == "softmax":
                y = torch.softmax(y, dim=self.canon.index(kw.get("axis", "channel")))
            elif name == "scale_linear":
                gain = torch.as_tensor(_along(kw.get("gain", 1.0), kw.get("axis"), self.canon, y.ndim))
                offset = torch.as_tensor(_along(kw.get("offset", 0.0), kw.get("axis"), self.canon, y.ndim))
                y = y * gain.to(y.device) + offset.to(y.device)
            elif name == "clip":
                y = torch.clamp(y, kw.get("min"), kw.get("max"))
            elif name == "binarize":
                y = (y > float(kw["threshold"])).float()
        return y


def _architecture(arch: Any, folder: Path, v04: bool, kwargs: dict) -> nn.Module:

    if v04:
        if isinstance(arch, str) and ":" in arch and arch.split(":")[0].endswith(".py"):
            source, name = arch.rsplit(":", 1)
            entry = {"source": source}
        elif isinstance(arch, str):
            module, name = arch.rsplit(".", 1)
            return getattr(importlib.import_module(module), name)(**kwargs)
        else:
            raise CheckpointError("the package's architecture entry is not understood")
    else:
        name = arch["callable"]
        if "import_from" in arch:
            try:
                module = importlib.import_module(arch["import_from"])
            except ImportError:
                raise CheckpointError(f"the model's architecture needs the Python package {arch['import_from']!r}; "
                                      "install it or use a package with TorchScript weights") from None
            return getattr(module, name)(**kwargs)
        entry = arch
    code = read_weights_file(folder, entry).decode("utf-8")
    module = types.ModuleType(f"bioimageio_architecture_{abs(hash(code))}")
    sys.modules[module.__name__] = module  # dataclasses and pickling look modules up by name
    exec(compile(code, str(entry["source"]), "exec"), module.__dict__)  # the package's own code, as bioimage.io runs it
    return getattr(module, name)(**kwargs)


def _network(rdf: dict, folder: Path, v04: bool, device: torch.device) -> tuple[nn.Module, str]:

    weights = rdf.get("weights") or {}
    if "torchscript" in weights:
        data = read_weights_file(folder, weights["torchscript"])
        return torch.jit.load(io.BytesIO(data), map_location=device), "torchscript"
    if "pytorch_state_dict" in weights:
        entry = weights["pytorch_state_dict"]
        kwargs = dict(entry.get("kwargs") or {}) if v04 else dict(entry["architecture"].get("kwargs") or {})
        net = _architecture(entry["architecture"], folder, v04, kwargs)
        state = torch.load(io.BytesIO(read_weights_file(folder, entry)), map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=entry.get("strict", True))
        return net.to(device), "pytorch_state_dict"
    raise CheckpointError(f"the package has no PyTorch weights (it has: {', '.join(weights) or 'none'}); "
                          "napari-bioimg runs TorchScript or PyTorch state-dict weights")


def load_foreign(rdf: dict, folder: Path, device, origin: Path) -> LoadedModel:
    """A :class:`LoadedModel` for a package not written by napari-bioimg."""
    v04 = str(rdf.get("format_version", "0.5")).startswith("0.4")
    if len(rdf.get("inputs", [])) != 1 or not rdf.get("outputs"):
        raise CheckpointError("napari-bioimg runs packages with exactly one input tensor")
    ipt = _tensor(rdf["inputs"][0], v04, "input")
    out = _tensor(rdf["outputs"][0], v04, "output")
    known = {"batch", "channel", "z", "y", "x"}
    if not set(ipt.axes) <= known or not set(out.axes) <= known:
        raise CheckpointError(f"input axes {ipt.axes} / output axes {out.axes}: napari-bioimg supports batch, "
                              "channel and space (z, y, x) axes only")
    if "channel" not in ipt.axes and len(ipt.channels) != 1:
        raise CheckpointError("the package's input is not understood (channels without a channel axis)")
    if len(ipt.space) not in (2, 3) or ipt.space[-2:] != ["y", "x"] or out.space != ipt.space:
        raise CheckpointError(f"input axes {ipt.axes} / output axes {out.axes}: napari-bioimg needs 2D (y, x) or "
                              "3D (z, y, x) inputs and outputs of the same spatial axes")
    for name, _ in out.ops:
        if name not in POST_OPS:
            raise CheckpointError(f"the package's post-processing step {name!r} is not supported by napari-bioimg")
    dev = resolve_device(device)
    net, weights_format = _network(rdf, folder, v04, dev)
    model = ForeignNet(net, ipt, out).to(dev).eval()
    if v04 and not isinstance(out.sizes.get("channel"), int):  # 0.4 outputs may give no channel count
        with torch.inference_mode():
            probe = torch.zeros((1, len(ipt.channels), *model.preferred_tile), device=dev)
            out.channels = [f"channel{i}" for i in range(model(probe).shape[1])]
    pre = PackagePreprocessing(ipt.ops, ipt.space)
    spatial_dims = len(ipt.space)
    axes = ("C" if len(ipt.channels) > 1 else "") + ("ZYX" if spatial_dims == 3 else "YX")
    ckpt = build_checkpoint(
        model_name=f"bioimageio:{rdf.get('name', origin.stem)}", model_config={}, state_dict=None,
        task=ImportedOutputTask.name, task_meta={"class_names": out.channels}, normalizer=pre, axes=axes,
        spatial_dims=spatial_dims, in_channels=len(ipt.channels), out_channels=len(out.channels),
        extra={"bioimageio": {"name": rdf.get("name"), "source": str(origin), "weights": weights_format,
                              "format_version": rdf.get("format_version")}},
    )
    return LoadedModel(model, ImportedOutputTask(), ckpt["task"]["meta"], pre, spatial_dims,  # type: ignore[arg-type]
                       len(ipt.channels), len(out.channels), axes, dev, ckpt,
                       protocol=ModelProtocol(1, model.preferred_tile))
