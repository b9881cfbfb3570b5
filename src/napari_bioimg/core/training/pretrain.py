"""Self-supervised pretraining: the network learns the images before it learns the annotations.

When only a few images of a set are annotated, the others still show what the
structures look like. Before the task's own training, the task's network (same
architecture, an output layer with one channel per image channel) learns to predict
masked pixels from their neighbourhood on every image of the set, annotated or not:
the blind-spot task of Noise2Void (:mod:`..tasks.masking`), which needs nothing but
the images. Its weights, all but the output layer (whose classes differ), then start
the task's training. A U-Net with skip connections cannot learn anything from plain
reconstruction (the top skip copies the input), which is why the pixels it must
predict are hidden from it.

The budget is its own (``TrainConfig.pretrain`` seconds and/or ``pretrain_steps``),
not part of ``time_limit``; the events say ``phase="pretrain"``.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from ..control import Control
from ..data.patches import PatchSampler
from ..data.sampling import DataSetSampler
from ..data.targets import ImageTargets
from ..events import Notice, StepDone
from ..models import get_model
from ..runtime.device import autocast
from ..tasks.masking import mask_batch, masked_mse
from .optim import set_learning_rate
from .parts import TrainingSetup

MASK_FRACTION = 0.06
"""Pixels masked per patch (as the denoiser's default)."""
PRETRAIN_STREAM = 11
"""Second word of pretraining's seed: its draws leave the task's random streams untouched."""


def pretrain(setup: TrainingSetup, control: Control) -> Generator[Any, None, None]:
    """Pretrain ``setup.model`` in place on every image of the run (see the module notes)."""
    config, task = setup.config, setup.task
    refusal = task.pretrain_refusal()
    if refusal:
        yield Notice(f"pretraining is skipped: task {task.name!r} {refusal}", "info")
        return
    seed = None if config.seed is None else [config.seed, PRETRAIN_STREAM]
    rng = np.random.default_rng(seed)
    channels = setup.dataset.n_channels if setup.dataset is not None else setup.inputs.shape[1]
    sampler, images = _sampler(setup, rng, setup.problem.patch)
    net = get_model(config.model, spatial_dims=setup.layout.spatial_dims, in_channels=setup.in_channels,
                    out_channels=channels, **config.model_config).to(setup.device)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    limit, steps = config.pretrain, config.pretrain_steps
    budget = ([f"{limit:g} s"] if limit else []) + ([f"{steps} steps"] if steps else [])
    yield Notice("pretraining on " + (f"{images} image(s)" if setup.dataset is not None else "the image")
                 + " (blind-spot, no annotations needed) for " + " or ".join(budget), "info")
    net.train()
    start, step, losses = time.perf_counter(), 0, []
    try:
        while not control.stop_requested:
            elapsed = time.perf_counter() - start
            fraction = max(elapsed / limit if limit else 0.0, step / steps if steps else 0.0)
            if fraction >= 1.0:
                break
            set_learning_rate(optimizer, config, step, fraction)
            x, y = sampler.sample(config.batch_size, setup.device)
            masked, mask = mask_batch(x, MASK_FRACTION, rng)
            with autocast(setup.device, config.amp):
                out = net(masked)
            loss = masked_mse(out, y, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            losses.append(float(loss.detach()))
            elapsed = time.perf_counter() - start
            fraction = max(elapsed / limit if limit else 0.0, step / steps if steps else 0.0)
            yield StepDone(step, 0, losses[-1], optimizer.param_groups[0]["lr"], elapsed, min(fraction, 1.0),
                           max(0.0, (1 - fraction) / max(fraction, 1e-9) * elapsed), step / max(elapsed, 1e-9),
                           phase="pretrain")
    finally:
        close = getattr(sampler, "close", None)
        if close is not None:
            close()
    moved = transfer(net.state_dict(), setup.model)
    setup.pretrained = {"method": "blind-spot", "steps": step, "seconds": round(time.perf_counter() - start, 1),
                        "images": images, "last_loss": float(np.mean(losses[-20:])) if losses else None,
                        "tensors": moved}
    yield Notice(f"pretraining done: {step} steps; {moved} of {len(setup.model.state_dict())} weight tensors "
                 "carried over to the task's network", "info")


def _sampler(setup: TrainingSetup, rng: np.random.Generator, patch: tuple[int, ...]):
    """Patches of every image (annotated or not), unzoomed (zoom would blur the noise the task must see)."""
    if setup.dataset is not None:
        ds = setup.dataset
        return DataSetSampler(ds, patch, ImageTargets(needs="image"), rng, augment=setup.config.augment,
                              rescale=False, intensity=False), len(ds)
    x = setup.inputs
    return PatchSampler(x, x, None, patch, rng, augment=setup.config.augment, rescale=False, intensity=False), 1


def transfer(weights: dict[str, torch.Tensor], model: torch.nn.Module) -> int:
    """Copy every tensor of ``weights`` that ``model`` has under the same name and shape; return how many."""
    own = model.state_dict()
    shared = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    own.update(shared)
    model.load_state_dict(own)
    return len(shared)
