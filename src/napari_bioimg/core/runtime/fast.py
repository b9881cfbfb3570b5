"""Inference fast paths: folded batch-norm, channels-last, thread counts, optional ``torch.compile``.

None of these change what a model computes (beyond float rounding); they change
how fast it runs. :func:`inference_model` returns an optimised *copy*, so the
trained model (and a running training loop) is never touched.
"""

from __future__ import annotations

import copy
import os
import warnings

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def available_cores() -> int:
    """CPU cores this process may run on (respects affinity masks, e.g. in containers and on dask workers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def configure_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads (default: the available cores); return the number set.

    On a dask worker with several threads, pass ``cores // threads`` so the
    workers do not oversubscribe the machine.
    """
    n = available_cores() if n is None else max(1, int(n))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every eval-mode BatchNorm that directly follows a convolution into it (in place).

    Returns how many were folded. Inside an ``nn.Sequential`` a ``Conv -> BN``
    pair becomes one convolution with adjusted weights and bias, which removes
    a full read and write of every feature map.
    """
    folded = 0
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, _CONVS) and isinstance(bn, _BNS) and bn.track_running_stats \
                    and bn.running_mean is not None and not bn.training and not conv.training:
                module._modules[a] = fuse_conv_bn_eval(conv, bn)
                module._modules[b] = nn.Identity()
                folded += 1
    return folded


def is_plain(model: nn.Module) -> bool:
    """A network built from ordinary modules (ours), not a scripted or wrapped foreign one."""
    return not any(isinstance(m, torch.jit.ScriptModule) for m in model.modules())


def channels_last_helps(device: torch.device, spatial_dims: int) -> bool:
    """Whether channels-last memory is the faster layout here.

    Measured on this project's U-Net on a 2-core x86 CPU: channels-last alone ran
    2D batches 1.3x and 3D batches 1.85x faster (oneDNN), with folded batch-norm
    1.5-1.9x (``prepared_model_speedup`` in ``benchmarks/speed/run_all.py``'s output);
    on CUDA it is the layout tensor cores want under mixed precision.
    """
    return device.type in ("cpu", "cuda")


def memory_format(spatial_dims: int) -> torch.memory_format:
    return torch.channels_last if spatial_dims == 2 else torch.channels_last_3d


def inference_model(model: nn.Module, device: torch.device, spatial_dims: int, *, fold: bool = True,
                    channels_last: bool | None = None, compile: bool = False) -> tuple[nn.Module, bool]:
    """An eval-mode copy of ``model`` prepared for fast inference on ``device``.

    Parameters
    ----------
    fold
        Fold batch-norm into the preceding convolutions.
    channels_last
        Use channels-last memory; ``None`` picks it where it helps
        (:func:`channels_last_helps`).
    compile
        Wrap the copy in ``torch.compile`` (needs a C++ compiler on CPU; the
        first batch then takes longer while it compiles).

    Returns
    -------
    (model, channels_last)
        The prepared copy, and whether its inputs should be channels-last.
    """
    if not is_plain(model):  # e.g. an imported TorchScript network: run it as it is
        return model.eval(), False
    fast = copy.deepcopy(model).eval()
    if fold:
        fold_batchnorm(fast)
    if channels_last is None:
        channels_last = channels_last_helps(device, spatial_dims)
    if channels_last:
        fast = fast.to(memory_format=memory_format(spatial_dims))
    for p in fast.parameters():
        p.requires_grad_(False)
    if compile:
        try:
            # freezing: weights become constants, so oneDNN gets them pre-packed and fuses conv + ReLU
            # (on this project's U-Net, 2-core CPU: ~15% faster than eager after a ~7 s compile)
            options = {"freezing": True} if device.type == "cpu" else None
            fast = torch.compile(fast, dynamic=False, options=options)
        except Exception as err:  # compile is an optional speed-up; never fail a prediction over it
            warnings.warn(f"torch.compile is unavailable here ({type(err).__name__}); running uncompiled",
                          stacklevel=2)
    return fast, bool(channels_last)


def warm_up() -> None:
    """Pay torch's one-time start-up costs now, e.g. in a background thread when the widget opens.

    The first optimizer imports ``torch._dynamo`` (over a second, holding the GIL
    for stretches of ~150 ms, which would freeze the viewer if it happened after
    Train is pressed), and the first convolution and backward pass set up oneDNN.
    """
    import torch._dynamo  # noqa: F401  (imported by the first optimizer otherwise)

    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    opt = torch.optim.Adam(net.parameters())
    net(torch.zeros(2, 1, 32, 32)).sum().backward()
    opt.step()
