"""Device choice (auto / cuda / mps / cpu) and mixed precision."""

from __future__ import annotations

import contextlib

import torch

from ..errors import DeviceError
from ..settings.defaults import DEVICE_CHOICES


def available_devices() -> list[str]:
    """Names of the devices this torch build can use here, best first."""
    names = []
    if torch.cuda.is_available():
        names.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    names.append("cpu")
    return names


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"`` (or ``None``)/``"cuda"``/``"cuda:1"``/``"mps"``/``"cpu"`` into a usable device.

    Raises
    ------
    DeviceError
        If a GPU is asked for but this machine or torch build has none.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device(available_devices()[0])
    kind = name.split(":")[0]
    if kind not in ("cuda", "mps", "cpu"):
        raise DeviceError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only torch build" if torch.version.cuda is None else "no CUDA GPU visible"
        raise DeviceError(f"CUDA was requested but is not available ({build}); use device 'auto' or 'cpu'")
    if kind == "mps" and "mps" not in available_devices():
        raise DeviceError("Apple MPS was requested but is not available here; use device 'auto' or 'cpu'")
    if kind == "cuda" and ":" in name:
        index = int(name.split(":")[1])
        if index >= torch.cuda.device_count():
            raise DeviceError(f"{name} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    return torch.device(name)


def describe(device: torch.device) -> str:
    """A short human description, e.g. ``cuda (NVIDIA H100)`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype to use for mixed precision, or None where it does not help."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, enabled: bool = True):
    """Autocast context on CUDA (bf16 where supported), a no-op elsewhere."""
    dtype = amp_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)
