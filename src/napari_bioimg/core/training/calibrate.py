"""After training: the chosen weights on the regions the task names, and the post-processing settings the task
picks there (see :mod:`..tasks.calibration`), stored in the model's task meta."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..control import drain
from ..inference.tiling import tiled_apply
from ..runtime.device import autocast
from ..runtime.fast import inference_model, memory_format
from ..settings.defaults import OVERLAP

if TYPE_CHECKING:
    from .loop import Trainer

#: YX flips averaged when the model predicts with test-time augmentation (as :data:`..inference.runner.FLIPS`).
FLIPS = ((), (-1,), (-2,), (-2, -1))
#: 2D tile (as the loop's previews and validation).
TILE_2D = 512


def calibrate(trainer: Trainer, weights: dict[str, torch.Tensor], stop=None) -> dict[str, Any]:
    """Task meta updates chosen with ``weights`` (the weights the model file will hold); ``{}`` when the task
    calibrates nothing. ``stop``: true when the search must end (the time limit, see :mod:`.reserve`)."""
    s = trainer.s
    regions = s.task.calibration_regions(s.problem)
    if stop is not None:  # a timed run: as many regions as the time left allows (the validation regions first)
        regions = trainer.reserve.fit(regions, len(s.problem.val_regions), trainer.clock.elapsed())
    if not regions:
        return {}
    start = time.perf_counter()
    keep = {k: v.detach().clone() for k, v in s.model.state_dict().items()}
    s.model.load_state_dict(weights)
    try:
        fn = _model_fn(trainer)
        outputs = [_region_output(trainer, fn, r) for r in regions]
    finally:
        s.model.load_state_dict(keep)
    updates = s.task.calibrate(s.problem, regions, outputs, fixed=set(trainer.config.task_config), stop=stop)
    if "calibration" in updates:
        updates["calibration"] = dict(updates["calibration"], seconds=round(time.perf_counter() - start, 2))
    return updates


def _model_fn(trainer: Trainer):
    """Batch -> activated outputs of an inference copy of the model, averaged over flips when the model
    predicts with test-time augmentation (``tta`` in the task meta)."""
    s = trainer.s
    tta = bool(s.problem.meta.get("tta", False))
    fast, channels_last = inference_model(s.model, s.device, s.layout.spatial_dims)
    fmt = memory_format(s.layout.spatial_dims)

    def fn(b):
        if channels_last:
            b = b.contiguous(memory_format=fmt)
        total = None
        with autocast(s.device, trainer.config.amp):
            for dims in (FLIPS if tta else ((),)):
                y = s.task.activation(fast(b.flip(dims) if dims else b).float())
                y = y.flip(dims) if dims else y
                total = y if total is None else total + y
        return total / (len(FLIPS) if tta else 1)

    return fn


def _region_output(trainer: Trainer, fn, region) -> np.ndarray:
    """Activated outputs inside ``region``, tiled over the region grown by the validation margin."""
    s, problem = trainer.s, trainer.s.problem
    source = problem.val_inputs.get(region.sample) if problem.val_inputs else None
    source = s.inputs[region.sample] if source is None else source  # a data set's crops carry their margin
    grown = tuple(slice(max(0, b.start - trainer.margin), min(n, b.stop + trainer.margin))
                  for b, n in zip(region.box, source.shape[1:]))
    tile = tuple(2 * p for p in problem.patch) if s.layout.spatial_dims == 3 else TILE_2D  # as the loop's
    out = drain(tiled_apply(fn, source[(slice(None), *grown)], problem.out_channels, tile, OVERLAP,
                            s.divisor, 2, s.device))
    inner = tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(region.box, grown))
    return out[(slice(None), *inner)]
