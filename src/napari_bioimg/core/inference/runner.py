"""What every prediction path shares: the model as a batch function, tile defaults, memory estimates.

Used by in-memory prediction (:mod:`.predict`), block-by-block prediction
(:mod:`.blocks`) and the dask scale-out (:mod:`.distributed`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..formats.checkpoint import LoadedModel
from ..runtime.device import autocast
from ..runtime.fast import inference_model, memory_format

DEFAULT_TILE = {2: 256, 3: (32, 128, 128)}
FLIPS = ((), (-1,), (-2,), (-2, -1))


def model_fn(loaded: LoadedModel, amp: bool = True, tta: bool = False, *, fast: bool = True,
             compile: bool = False):
    """Batch -> activated outputs, using an inference-ready copy of the model.

    With ``fast`` the copy has batch-norm folded into the convolutions and uses
    channels-last memory where that is faster (:mod:`.fast`); ``compile`` adds
    ``torch.compile`` (falls back to eager with a warning if compiling fails).
    Autocast (bf16/fp16) is used on CUDA when ``amp``. With ``tta`` the outputs
    are averaged over the four flips of the YX plane (test-time augmentation:
    4x the compute, smoother boundaries).
    """
    task, device = loaded.task, loaded.device
    key = (fast, compile, str(device))
    if key not in loaded.fast:
        if fast or compile:
            loaded.fast[key] = inference_model(loaded.model, device, loaded.spatial_dims, fold=fast,
                                               channels_last=None if fast else False, compile=compile)
        else:
            loaded.fast[key] = (loaded.model.eval(), False)
    model, channels_last = loaded.fast[key]
    fmt = memory_format(loaded.spatial_dims)
    state = {"model": model}

    def run(x: torch.Tensor) -> torch.Tensor:
        with autocast(device, amp):
            if not tta:
                return task.activation(state["model"](x).float())
            total = None
            for dims in FLIPS:
                y = task.activation(state["model"](x.flip(dims) if dims else x).float())
                y = y.flip(dims) if dims else y
                total = y if total is None else total + y
            return total / len(FLIPS)

    def fn(x: torch.Tensor) -> torch.Tensor:
        if channels_last:
            x = x.contiguous(memory_format=fmt)
        try:
            y = run(x)
        except Exception as err:
            if not compile or state["model"] is not model:
                raise
            warnings.warn(f"torch.compile failed ({type(err).__name__}); predicting without it", stacklevel=2)
            state["model"] = getattr(model, "_orig_mod", loaded.model)
            y = run(x)
        return y.contiguous()

    return fn


def working_bytes(shape: tuple[int, ...], loaded: LoadedModel) -> int:
    """Estimated memory of the in-memory path for an image of ``shape`` (float32 input and outputs)."""
    n = int(np.prod(shape, dtype=np.int64))
    return 4 * n * (2 * loaded.temporal_context + 2 + loaded.out_channels)
