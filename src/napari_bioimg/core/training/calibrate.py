"""After training: the chosen weights on the regions the task names, and the post-processing settings the task
picks there (see :mod:`..tasks.calibration`), stored in the model's task meta.

:func:`calibrate` is given what it reads (the model, the task, the held-out data, the
run's configuration), not the training loop: the loop decides which regions the
time left allows (:mod:`.reserve`) and hands them over as :class:`HeldOut`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..control import drain
from ..inference.tiling import tiled_apply
from ..runtime.device import autocast
from ..runtime.fast import inference_model, memory_format
from ..settings.defaults import OVERLAP

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config import TrainConfig
    from ..data.patches import ValRegion
    from ..tasks import Task
    from ..tasks.base import Problem

#: YX flips averaged when the model predicts with test-time augmentation (as :data:`..inference.runner.FLIPS`).
FLIPS = ((), (-1,), (-2,), (-2, -1))
#: 2D tile (as the loop's previews and validation).
TILE_2D = 512


@dataclass(frozen=True)
class HeldOut:
    """The held-out data calibration reads: the regions to calibrate on and where their pixels are."""

    problem: Problem
    """The task bound to the training data (its validation inputs, patch, outputs and meta)."""
    regions: list[ValRegion]
    """Where to choose the settings (the task's calibration regions, as many as the time left allows)."""
    inputs: np.ndarray | None
    """The normalised image ``(N, C, *spatial)`` held in memory (``None``: a data set, whose held-out crops are
    the problem's ``val_inputs``)."""
    margin: int
    """Context read around each region (as validation's)."""
    divisor: int | tuple[int, ...] = 1
    """Sizes the network takes (its registry entry's protocol)."""


def calibrate(model: nn.Module, task: Task, held: HeldOut, config: TrainConfig, weights: dict[str, torch.Tensor],
              *, device: torch.device, stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Task meta updates chosen with ``weights`` (the weights the model file will hold) on ``held``'s regions;
    ``{}`` when there are none. ``config``: the run's (``amp``, and ``task_config``: the options the user fixed);
    ``stop``: true when the search must end (the time limit, see :mod:`.reserve`). ``model`` gets its own weights
    back afterwards."""
    if not held.regions:
        return {}
    start = time.perf_counter()
    keep = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(weights)
    try:
        fn = _model_fn(model, task, held.problem, config.amp, device)
        outputs = [_region_output(fn, model, held, r, device) for r in held.regions]
    finally:
        model.load_state_dict(keep)
    updates = task.calibrate(held.problem, held.regions, outputs, fixed=set(config.task_config), stop=stop)
    if "calibration" in updates:
        updates["calibration"] = dict(updates["calibration"], seconds=round(time.perf_counter() - start, 2))
    return updates


def _model_fn(model: nn.Module, task: Task, problem: Problem, amp: bool, device: torch.device):
    """Batch -> activated outputs of an inference copy of the model, averaged over flips when the model
    predicts with test-time augmentation (``tta`` in the task meta)."""
    tta = bool(problem.meta.get("tta", False))
    spatial_dims = len(problem.patch)
    fast, channels_last = inference_model(model, device, spatial_dims)
    fmt = memory_format(spatial_dims)

    def fn(b):
        if channels_last:
            b = b.contiguous(memory_format=fmt)
        total = None
        with autocast(device, amp):
            for dims in (FLIPS if tta else ((),)):
                y = task.activation(fast(b.flip(dims) if dims else b).float())
                y = y.flip(dims) if dims else y
                total = y if total is None else total + y
        return total / (len(FLIPS) if tta else 1)

    return fn


def _region_output(fn, model: nn.Module, held: HeldOut, region: ValRegion, device: torch.device) -> np.ndarray:
    """Activated outputs inside ``region``, tiled over the region grown by the validation margin."""
    problem = held.problem
    source = problem.val_inputs.get(region.sample) if problem.val_inputs else None
    source = held.inputs[region.sample] if source is None else source  # a data set's crops carry their margin
    grown = tuple(slice(max(0, b.start - held.margin), min(n, b.stop + held.margin))
                  for b, n in zip(region.box, source.shape[1:]))
    tile = tuple(2 * p for p in problem.patch) if len(problem.patch) == 3 else TILE_2D  # as the loop's
    out = drain(tiled_apply(fn, source[(slice(None), *grown)], problem.out_channels, tile, OVERLAP,
                            held.divisor, 2, device))
    inner = tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(region.box, grown))
    return out[(slice(None), *inner)]
