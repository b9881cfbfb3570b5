"""The network as exported files hold it: with its output activation, any input size, traced.

Shared by the TorchScript / ONNX export (:mod:`.export`) and bioimage.io packages
(:mod:`.bioimageio.package`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from ..tasks.base import Task
from .checkpoint import LoadedModel

ACTIVATIONS = ("softmax", "sigmoid", "identity")


def apply_activation(y: torch.Tensor, activation: str) -> torch.Tensor:
    """The output activation by name (channels are dim 1)."""
    if activation == "softmax":
        return torch.softmax(y, dim=1)
    if activation == "sigmoid":
        return torch.sigmoid(y)
    return y


def activation_name(task: Task) -> str:
    """Name of a task's output activation, for tools that cannot run our Python code."""
    if type(task).activation is Task.activation:
        return "softmax"
    name = getattr(task, "export_activation", None)
    if name not in ACTIVATIONS:
        raise ConfigError(f"task {task.name!r} has a custom output activation that cannot be exported yet")
    return name


class ActivatedNet(nn.Module):
    """A network followed by its output activation: what exported files contain."""

    def __init__(self, net: nn.Module, activation: str):
        super().__init__()
        self.net = net
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_activation(self.net(x), self.activation)


class PadToMultiple(nn.Module):
    """TorchScript-friendly padding to a multiple of ``multiple`` (reflect, or replicate when tiny) and crop back.

    A traced U-Net only knows the shapes it was traced with (sizes that are already
    multiples); this scripted shell lets the saved file take any size, like our own
    U-Net does.
    """

    def __init__(self, net: nn.Module, multiple: int):
        super().__init__()
        self.net = net
        self.multiple = multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        small = False
        for d in range(x.dim() - 1, 1, -1):
            size = x.shape[d]
            extra = (self.multiple - size % self.multiple) % self.multiple
            pads += [0, extra]
            if extra >= size:
                small = True
        if sum(pads) == 0:
            return self.net(x)
        y = self.net(F.pad(x, pads, mode="replicate" if small else "reflect"))
        if x.dim() == 4:
            return y[:, :, : x.shape[2], : x.shape[3]]
        return y[:, :, : x.shape[2], : x.shape[3], : x.shape[4]]


def activated(loaded: LoadedModel) -> ActivatedNet:
    """The loaded model with its activation, on the CPU, in eval mode (a copy: the original is untouched)."""
    import copy

    net = copy.deepcopy(loaded.model).cpu().eval()
    return ActivatedNet(net, activation_name(loaded.task)).eval()


def reference_output(loaded: LoadedModel, raw: np.ndarray) -> np.ndarray:
    """Our pipeline on a raw crop ``(1, C, *spatial)``: normalise, network, activation -> ``(1, K, *spatial)``."""
    xn = loaded.normalizer.apply(raw)
    net = activated(loaded)
    with torch.inference_mode():
        return net(torch.from_numpy(xn)).numpy()


def trace(loaded: LoadedModel, example: np.ndarray) -> torch.jit.ScriptModule:
    """TorchScript of the activated network that accepts any spatial size."""
    net = activated(loaded)
    example_n = torch.from_numpy(loaded.normalizer.apply(example))
    with warnings.catch_warnings(), torch.inference_mode(False):
        warnings.simplefilter("ignore")  # tracer and deprecation warnings: the shell below handles shapes
        traced = torch.jit.trace(net, example_n, check_trace=False)
        return torch.jit.script(PadToMultiple(traced, loaded.size_divisor))
