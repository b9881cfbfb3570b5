"""Training as a generator of typed progress events.

``train(...)`` yields :mod:`.events` objects and *returns* a :class:`TrainResult`
holding a checkpoint dict. A GUI wraps it in napari's ``thread_worker``; a script
calls :func:`train_sync`. A :class:`Control` stops it cleanly at the next step,
still returning the model trained so far.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from .axes import make_layout
from .checkpoint import build_checkpoint, check_checkpoint
from .config import TrainConfig
from .control import Control
from .device import amp_dtype, autocast, describe, resolve_device
from .errors import ConfigError, InputError
from .events import Notice, PreviewReady, StepDone, TrainingStarted, TrainResult, ValidationDone
from .fast import inference_model, memory_format
from .models import get_model, model_entry
from .normalize import Normalizer, count_nonfinite
from .predict import drain
from .tasks import get_task
from .temporal import check_context, stack_context
from .tiling import tiled_apply

WARMUP_STEPS = 20
VAL_MARGIN = 32
#: Seconds of training before the first live preview (later ones follow every ``preview_every``).
FIRST_PREVIEW = 1.0
#: 2D tile for previews and validation: a 512x512 frame is one tile (no overlap to recompute).
PREVIEW_TILE_2D = 512


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    name = config.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=config.learning_rate, momentum=config.momentum,
                               weight_decay=config.weight_decay, nesterov=config.momentum > 0)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(params, lr=config.learning_rate, weight_decay=config.weight_decay)


def lr_factor(step: int, fraction: float) -> float:
    """Linear warm-up, then cosine decay to 5% over the budget (time or epochs)."""
    warm = min(1.0, (step + 1) / WARMUP_STEPS)
    return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, fraction))))


def auto_z_levels(patch_size, z_extent: int, depth: int) -> int:
    """How many U-Net levels should halve Z for this 3D patch: keep at least ~4 slices at the bottom.

    Flat patches (e.g. 8x128x128 on anisotropic stacks) pool Z fewer times than
    Y and X; the default 32x96x96 patch pools every level, as before.
    """
    z = 32 if patch_size is None else (patch_size if isinstance(patch_size, int) else tuple(patch_size)[0])
    z = max(1, min(int(z), int(z_extent)))
    return int(min(depth, max(0, math.floor(math.log2(max(z, 1) / 4)))))


def _seed_everything(seed: int | None) -> np.random.Generator:
    if seed is not None:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)


def _flat_index(index, batch_shape: tuple[int, ...], n: int) -> int | None:
    if index is None:
        return None
    if isinstance(index, (tuple, list)):
        index = tuple(int(i) for i in index)[-len(batch_shape):] if batch_shape else ()
        if len(index) != len(batch_shape):
            return 0
        index = int(np.ravel_multi_index(tuple(np.clip(index, 0, np.array(batch_shape) - 1)), batch_shape)) if batch_shape else 0
    return int(np.clip(int(index), 0, n - 1))


def train(
    image: Any,
    annotations: Any = None,
    config: TrainConfig | None = None,
    *,
    axes: str | None = None,
    control: Control | None = None,
    preview_index: int | tuple[int, ...] | None = 0,
    rgb: bool = False,
    axes_hint: str | None = None,
    init_checkpoint: dict | None = None,
    extra: dict | None = None,
) -> Generator[Any, None, TrainResult]:
    """Train a model on one image (or stack) and its annotations.

    Parameters
    ----------
    image
        Array in the layout given by ``axes`` (guessed when ``None``).
    annotations
        Labels in the image's layout without its channel axis (``None`` for
        self-supervised tasks).
    config
        :class:`TrainConfig`; defaults train an instance U-Net for 120 s.
    control
        Set :meth:`Control.stop` to finish early and still get the model.
    preview_index
        Which sample (frame/slice along the non-spatial axes) to preview while
        training; ``None`` disables previews.
    init_checkpoint
        Start from these weights (fine-tuning); its task and model must match.
    """
    config = (config or TrainConfig()).validate()
    control = control or Control()
    task = get_task(config.task)
    if model_entry(config.model).kind != task.model_kind:
        raise ConfigError(f"model {config.model!r} cannot do task {task.name!r}")
    device = resolve_device(config.device)
    rng = _seed_everything(config.seed)

    image = np.asarray(image)
    layout = make_layout(image.shape, axes, config.spatial_dims, rgb=rgb, hint=axes_hint)
    x = layout.to_canonical(image)
    bad = count_nonfinite(x)
    if bad:
        yield Notice(f"{bad} NaN/inf pixel(s) in the image were set to its low value for training")
    if min(layout.spatial_shape) < 4:
        raise InputError(f"the image is too small to train on: spatial size {layout.spatial_shape} (axes {layout.axes})")
    context = check_context(config.temporal_context, layout)
    normalizer = Normalizer(*config.percentiles).fit(x)
    xn = stack_context(normalizer.apply(x, refit=False), layout, context)
    in_channels = xn.shape[1]
    ann = None
    if annotations is not None:
        ann = layout.labels_to_canonical(np.asarray(annotations))
    elif task.needs_annotations:
        raise InputError(f"task {task.name!r} needs annotations: pick or paint a labels layer")

    model_config = dict(task.default_model_config(layout.spatial_dims), **config.model_config)
    if init_checkpoint is not None:
        init_checkpoint = check_checkpoint(init_checkpoint)
        if init_checkpoint["task"]["name"] != task.name or init_checkpoint["model"]["name"] != config.model:
            raise ConfigError("the starting model was trained for another task or model family")
        model_config = dict(init_checkpoint["model"]["config"])
    elif config.model == "unet" and layout.spatial_dims == 3 and "pool_z_levels" not in model_config:
        model_config["pool_z_levels"] = auto_z_levels(config.patch_size, layout.spatial_shape[0],
                                                      int(model_config.get("depth", 3)))
    probe = get_model(config.model, spatial_dims=layout.spatial_dims, in_channels=in_channels,
                      out_channels=1, **model_config)
    divisor = getattr(probe, "size_divisor", 1)
    problem = task.make_problem(xn, ann, config, rng, divisor, extra)
    if init_checkpoint is not None and init_checkpoint["data"]["out_channels"] != problem.out_channels:
        raise ConfigError("the starting model predicts a different number of classes than these annotations")
    model = get_model(config.model, spatial_dims=layout.spatial_dims, in_channels=in_channels,
                      out_channels=problem.out_channels, **model_config).to(device)
    if init_checkpoint is not None:
        model.load_state_dict(init_checkpoint["state_dict"])
    optimizer = make_optimizer(model.parameters(), config)
    dtype = amp_dtype(device) if config.amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)

    total_steps = config.epochs * config.steps_per_epoch if config.epochs else None
    preview_n = _flat_index(preview_index, layout.batch_shape, layout.n_samples)
    yield TrainingStarted(task.name, config.model, describe(device), sum(p.numel() for p in model.parameters()),
                          problem.n_train_pixels, problem.n_val_pixels, config.time_limit, total_steps, problem.patch)

    def apply_model(region_input: np.ndarray) -> np.ndarray:
        # an inference copy (batch-norm folded, channels-last): previews cost less and the training
        # model is never switched to eval mode under the loop's feet
        fast, channels_last = inference_model(model, device, layout.spatial_dims)
        fmt = memory_format(layout.spatial_dims)

        def fn(b):
            if channels_last:
                b = b.contiguous(memory_format=fmt)
            with autocast(device, config.amp):
                return task.activation(fast(b).float())

        tile = problem.patch if layout.spatial_dims == 3 else PREVIEW_TILE_2D
        return drain(tiled_apply(fn, region_input, problem.out_channels, tile, 0.25, divisor, 2, device))

    def run_validation() -> tuple[dict, float] | None:
        if not problem.val_regions:
            return None
        outs = []
        for r in problem.val_regions:
            grown = tuple(slice(max(0, b.start - VAL_MARGIN), min(s, b.stop + VAL_MARGIN))
                          for b, s in zip(r.box, xn.shape[2:]))
            out = apply_model(xn[(r.sample, slice(None), *grown)])
            inner = tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(r.box, grown))
            outs.append(out[(slice(None), *inner)])
        return task.validate(problem, outs)

    history: list[dict[str, float]] = []
    metrics: dict[str, float] = {}
    best_score, best_state = -math.inf, None
    start = time.perf_counter()
    last_preview = start - config.preview_every + min(config.preview_every, FIRST_PREVIEW)
    step = 0
    losses: list[float] = []
    model.train()
    while True:
        elapsed = time.perf_counter() - start
        fraction = max(elapsed / config.time_limit if config.time_limit else 0.0,
                       step / total_steps if total_steps else 0.0)
        if fraction >= 1.0 or control.stop_requested:
            break
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * lr_factor(step, fraction)
        xb, yb = problem.sampler.sample(config.batch_size, device)
        xb, yb = task.prepare_batch(xb, yb, rng, problem.meta)
        with autocast(device, config.amp):
            logits = model(xb)
        loss = task.loss(logits, yb, problem.meta)
        if not torch.isfinite(loss):
            raise InputError("the loss became NaN/inf: lower the learning rate or check the image for extreme values")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.grad_clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        step += 1
        loss_value = float(loss.detach())
        losses.append(loss_value)
        elapsed = time.perf_counter() - start
        fraction = max(elapsed / config.time_limit if config.time_limit else 0.0,
                       step / total_steps if total_steps else 0.0)
        rate = step / max(elapsed, 1e-9)
        eta = max(0.0, (1 - fraction) / max(fraction, 1e-9) * elapsed) if fraction > 0 else None
        epoch = (step - 1) // config.steps_per_epoch
        history.append({"step": step, "epoch": epoch, "loss": loss_value, "time": elapsed})
        yield StepDone(step, epoch, loss_value, optimizer.param_groups[0]["lr"], elapsed, min(fraction, 1.0), eta, rate)

        if step % config.steps_per_epoch == 0:
            val = run_validation()
            if val is not None:
                metrics, score = val
                is_best = score > best_score
                if is_best:
                    best_score, best_state = score, copy.deepcopy(model.state_dict())
                history[-1].update({f"val_{k}": v for k, v in metrics.items()})
                yield ValidationDone(step, epoch, metrics, score, is_best)
        now = time.perf_counter()
        if preview_n is not None and config.preview_every and now - last_preview >= config.preview_every:
            out = apply_model(xn[preview_n])
            data = task.postprocess(out, problem.meta)
            last_preview = time.perf_counter()
            yield PreviewReady(step, layout.sample_index(preview_n), data, task.output_kind)

    stopped_early = control.stop_requested
    if step == 0:
        raise InputError("training stopped before the first step; nothing to save")
    final = run_validation()
    if final is not None:
        metrics, score = final
        is_best = score > best_score
        if is_best:
            best_score, best_state = score, copy.deepcopy(model.state_dict())
        yield ValidationDone(step, (step - 1) // config.steps_per_epoch, metrics, score, is_best)
    chosen = best_state if best_state is not None else model.state_dict()
    if best_state is not None:
        metrics = dict(metrics, best_score=best_score)
    seconds = time.perf_counter() - start
    ckpt = build_checkpoint(
        model_name=config.model, model_config=model_config, state_dict=chosen, task=task.name,
        task_meta=problem.meta, normalizer=normalizer, axes=layout.axes, spatial_dims=layout.spatial_dims,
        in_channels=in_channels, out_channels=problem.out_channels, metrics=metrics,
        history=history, train_config=config.to_dict(),
        extra={"training": {"steps": step, "seconds": seconds, "stopped_early": stopped_early,
                            "last_loss": float(np.mean(losses[-20:]))}},
    )
    ckpt["data"]["temporal_context"] = context
    return TrainResult(ckpt, history, metrics, stopped_early, step, seconds)


def train_sync(image, annotations=None, config: TrainConfig | None = None, callback=None, **kwargs) -> TrainResult:
    """Run :func:`train` to the end (scripts, tests); ``callback`` sees each event."""
    return drain(train(image, annotations, config, **kwargs), callback)
