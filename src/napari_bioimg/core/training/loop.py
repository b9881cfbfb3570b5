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

from ..config import TrainConfig
from ..control import ActiveClock, Control, drain, run_clocked
from ..data.axes import make_layout
from ..data.normalize import Normalizer, count_nonfinite
from ..data.temporal import check_context, stack_context
from ..errors import ConfigError, InputError
from ..events import Notice, PreviewReady, StepDone, TrainingStarted, TrainResult, ValidationDone
from ..formats.checkpoint import build_checkpoint, check_checkpoint
from ..inference.tiling import tiled_apply
from ..models import get_model, list_models, model_entry
from ..runtime.device import amp_dtype, autocast, describe, resolve_device
from ..runtime.fast import inference_model, memory_format
from ..tasks import get_task
from .resume import RunState, data_fingerprint, last_weights, read_run_state, restore_rng, training_state

WARMUP_STEPS = 20
VAL_MARGIN = 32
#: Image-like entries of ``extra`` that are laid out and normalised exactly like the image.
IMAGE_EXTRAS = ("target", "reference")
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


def _prepare_extra(extra: dict | None, image: np.ndarray, layout, normalizer: Normalizer, x: np.ndarray) -> dict:
    """Bring image-like extras (a restoration target, a clean reference) to the canonical layout.

    They must have the image's shape; they are normalised with the image's
    percentiles (so a clean copy of the same pixels lands on the same scale) and
    keep NaN where they are not finite. ``invalid`` marks the image's own NaN/inf.
    """
    out = dict(extra or {})
    if count_nonfinite(x):
        out["invalid"] = ~np.isfinite(x)
    for name in IMAGE_EXTRAS:
        if out.get(name) is None:
            continue
        arr = np.asarray(out[name])
        if arr.shape != image.shape:
            raise InputError(f"the {name} image has shape {arr.shape} but the image has {image.shape}; "
                             f"the {name} must cover the same pixels (same axes, same size)")
        if arr.dtype.kind not in "biuf":
            raise InputError(f"the {name} image must hold numbers, got dtype {arr.dtype}")
        canonical = layout.to_canonical(arr)
        finite = np.isfinite(canonical)
        if not finite.any():
            raise InputError(f"the {name} image has no finite pixel values (all NaN or inf)")
        normed = normalizer.apply(canonical, refit=False)
        normed[~finite] = np.nan
        out[name] = normed
    return out


def _image_sample_layout(data: np.ndarray, layout) -> np.ndarray:
    """``(C, *spatial)`` result of one sample -> that sample's axes in the user's layout (C only if it has one)."""
    if "C" not in layout.axes:
        return data[0]
    src = "C" + layout.spatial_axes
    dst = "".join(a for a in layout.axes if a in src)
    return np.transpose(data, [src.index(a) for a in dst])


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
    resume: dict | None = None,
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
        :class:`TrainConfig`; defaults train an instance U-Net for 120 s. With
        ``resume`` it defaults to the checkpoint's own configuration.
    control
        Set :meth:`Control.stop` to finish early and still get the model.
    preview_index
        Which sample (frame/slice along the non-spatial axes) to preview while
        training; ``None`` disables previews.
    init_checkpoint
        Start from these weights (fine-tuning, e.g. on corrected annotations); its
        task and model must match. A new budget and learning-rate schedule start,
        while step numbers and the loss history continue.
    resume
        A checkpoint written by an earlier (stopped) run: training continues from
        its last weights, optimizer, step, random streams and elapsed time, so that
        with the same data and budget it matches an uninterrupted run step for step.

    Notes
    -----
    The time budget counts only the time the generator runs: while its consumer
    does not ask for the next event (a paused napari worker) the clock stands still.
    The returned checkpoint's ``state_dict`` holds the best weights by validation
    score when a validation split exists (else the last ones); ``last_state_dict``
    holds the last weights when they differ.
    """
    clock = ActiveClock()
    return (yield from run_clocked(
        _train(image, annotations, config, axes=axes, control=control or Control(), preview_index=preview_index,
               rgb=rgb, axes_hint=axes_hint, init_checkpoint=init_checkpoint, resume=resume, extra=extra,
               clock=clock),
        clock))


def _check_resumable(resume: dict, config: TrainConfig | None) -> tuple[dict, TrainConfig, list[str]]:
    resume = check_checkpoint(resume)
    read_run_state(resume)  # raises a clear error when the file holds no training state
    saved = TrainConfig.from_dict(resume["train_config"])
    if config is None:
        return resume, saved, []
    if (config.task, config.model) != (saved.task, saved.model):
        raise ConfigError(f"the checkpoint trained {saved.model!r} for task {saved.task!r}, "
                          f"not {config.model!r} for {config.task!r}")
    free = {"time_limit", "epochs", "device", "preview_every", "amp", "num_threads"}
    changed = [k for k, v in config.to_dict().items() if k not in free and v != saved.to_dict().get(k)]
    return resume, config, changed


def _train(image, annotations, config, *, axes, control, preview_index, rgb, axes_hint, init_checkpoint,
           resume, extra, clock: ActiveClock) -> Generator[Any, None, TrainResult]:
    if resume is not None and init_checkpoint is not None:
        raise ConfigError("give either a checkpoint to resume or one to fine-tune from, not both")
    changed: list[str] = []
    if resume is not None:
        resume, config, changed = _check_resumable(resume, config)
    config = (config or TrainConfig()).validate()
    task = get_task(config.task)
    if model_entry(config.model).kind != task.model_kind:
        raise ConfigError(f"model {config.model!r} cannot do task {task.name!r}; choose one of "
                          f"{', '.join(list_models(task.model_kind))} (default {task.default_model!r})")
    device = resolve_device(config.device)
    rng = _seed_everything(config.seed)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)

    image = np.asarray(image)
    if resume is not None and axes is None:
        axes = resume["data"]["axes"]
    layout = make_layout(image.shape, axes, config.spatial_dims or task.default_spatial_dims, rgb=rgb,
                         hint=axes_hint)
    x = layout.to_canonical(image)
    bad = count_nonfinite(x)
    if bad:
        yield Notice(f"{bad} NaN/inf pixel(s) in the image were set to its low value for training")
    if min(layout.spatial_shape) < 4:
        raise InputError(f"the image is too small to train on: spatial size {layout.spatial_shape} (axes {layout.axes})")
    if resume is not None:
        normalizer = Normalizer.from_dict(resume["normalizer"])  # the weights were trained with these values
    else:
        normalizer = Normalizer(*config.percentiles).fit(x)
    context = check_context(config.temporal_context, layout)
    xn = stack_context(normalizer.apply(x, refit=False), layout, context)
    in_channels = xn.shape[1]  # the image's channels, times 2k+1 frames with temporal context
    ann = None
    if annotations is not None:
        ann = layout.labels_to_canonical(np.asarray(annotations))
    elif task.needs_annotations:
        raise InputError(f"task {task.name!r} needs annotations: pick or paint a labels layer")
    fingerprint = data_fingerprint(image, None if annotations is None else np.asarray(annotations))

    missing = [name for name in getattr(task, "inputs", ()) if name == "target" and (extra or {}).get(name) is None]
    if missing:
        raise InputError(f"task {task.name!r} needs a {missing[0]} image: a clean (or high-SNR) image of the "
                         "same pixels")
    extra = _prepare_extra(extra, image, layout, normalizer, x)
    model_config = dict(task.default_model_config(layout.spatial_dims, device.type, config.model),
                        **config.model_config)
    start_from = init_checkpoint if init_checkpoint is not None else resume
    if init_checkpoint is not None:
        init_checkpoint = check_checkpoint(init_checkpoint)
        if init_checkpoint["task"]["name"] != task.name or init_checkpoint["model"]["name"] != config.model:
            raise ConfigError("the starting model was trained for another task or model family")
        start_from = init_checkpoint
    if start_from is not None:
        model_config = dict(start_from["model"]["config"])
        if int(start_from["data"]["spatial_dims"]) != layout.spatial_dims:
            raise ConfigError(f"the model is {start_from['data']['spatial_dims']}D but training would be "
                              f"{layout.spatial_dims}D (axes {layout.axes}); set the dimensionality to match")
    if start_from is None and config.model == "unet" and layout.spatial_dims == 3 \
            and "pool_z_levels" not in model_config:
        model_config["pool_z_levels"] = auto_z_levels(config.patch_size, layout.spatial_shape[0],
                                                      int(model_config.get("depth", 3)))
    probe = get_model(config.model, spatial_dims=layout.spatial_dims, in_channels=in_channels,
                      out_channels=1, **model_config)
    divisor = getattr(probe, "size_divisor", 1)
    problem = task.make_problem(xn, ann, config, rng, divisor, extra)
    for message in problem.notices:
        yield Notice(message)
    in_channels = problem.in_channels or in_channels
    if start_from is not None and int(start_from["data"]["in_channels"]) != in_channels:
        raise InputError(f"the model was trained on {start_from['data']['in_channels']} input channel(s) but this "
                         f"image gives {in_channels} (axes {layout.axes})")
    if start_from is not None and task.direct_model and \
            list(start_from["task"]["meta"].get("class_names", [])) != list(problem.meta.get("class_names", [])):
        raise ConfigError(f"the starting model knows the classes {start_from['task']['meta'].get('class_names')}, "
                          f"these annotations have {problem.meta.get('class_names')}; train a new model")
    if start_from is not None and start_from["data"]["out_channels"] != problem.out_channels:
        raise ConfigError("the starting model predicts a different number of classes than these annotations")
    model = get_model(config.model, spatial_dims=layout.spatial_dims, in_channels=in_channels,
                      out_channels=problem.out_channels, **model_config).to(device)
    optimizer = make_optimizer(model.parameters(), config)
    dtype = amp_dtype(device) if config.amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)

    run = RunState()
    if init_checkpoint is not None:
        model.load_state_dict(init_checkpoint["state_dict"])
        run.history = [dict(h) for h in init_checkpoint.get("history", [])]
        run.step = run.run_start = int(run.history[-1]["step"]) if run.history else 0
    elif resume is not None:
        run, state = read_run_state(resume)
        model.load_state_dict(last_weights(resume))
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler") and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"], rng, device)
        if state.get("data_fingerprint") != fingerprint:
            yield Notice("the image or annotations differ from the checkpoint's: training continues, but it will "
                         "not match an uninterrupted run (to train on corrected annotations, fine-tune instead)")
        if changed:
            yield Notice(f"settings differ from the checkpoint's ({', '.join(changed)}): the run will not match "
                         "an uninterrupted one", "info")

    total_steps = config.epochs * config.steps_per_epoch if config.epochs else None
    preview_n = _flat_index(preview_index, layout.batch_shape, layout.n_samples)
    yield TrainingStarted(task.name, config.model, describe(device), sum(p.numel() for p in model.parameters()),
                          problem.n_train_pixels, problem.n_val_pixels, config.time_limit, total_steps, problem.patch,
                          run.step, problem.unit)

    def budget_used() -> float:
        elapsed = clock.elapsed()
        return max(elapsed / config.time_limit if config.time_limit else 0.0,
                   run.local_step / total_steps if total_steps else 0.0)

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

    @torch.no_grad()
    def forward(batch: torch.Tensor) -> torch.Tensor:
        """Activated outputs of a batch in eval mode (direct tasks)."""
        model.eval()
        try:
            with autocast(device, config.amp):
                return task.activation(model(batch.to(device)).float())
        finally:
            model.train()

    margin = int(getattr(task, "val_margin", VAL_MARGIN))
    output_context = {"intensity_low": normalizer.low, "intensity_high": normalizer.high,
                      "source_dtype": image.dtype.str}

    def run_validation() -> tuple[dict, float, dict | None] | None:
        if task.direct_model:
            return task.validate_direct(problem, forward)
        if not problem.val_regions:
            return None
        outs = []
        for r in problem.val_regions:
            grown = tuple(slice(max(0, b.start - margin), min(s, b.stop + margin))
                          for b, s in zip(r.box, xn.shape[2:]))
            source = problem.val_inputs.get(r.sample) if problem.val_inputs else None
            source = xn[r.sample] if source is None else source
            out = apply_model(source[(slice(None), *grown)])
            inner = tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(r.box, grown))
            outs.append(out[(slice(None), *inner)])
        return (*task.validate(problem, outs), None)

    def validate_now() -> ValidationDone | None:
        val = run_validation()
        if val is None:
            return None
        run.metrics, score, report = val
        is_best = score > run.best_score
        if is_best:
            run.best_score, run.best_step = score, run.step
            run.best_state = copy.deepcopy(model.state_dict())
        return ValidationDone(run.step, (run.local_step - 1) // config.steps_per_epoch, run.metrics, score, is_best,
                              report)

    last_preview = time.perf_counter() - config.preview_every + min(config.preview_every, FIRST_PREVIEW)
    first_step = run.step
    since_best = 0
    early_stopped = False
    clock.reset(run.elapsed_before)  # the budget counts training, not the set-up above
    model.train()
    while True:
        fraction = budget_used()
        if fraction >= 1.0 or control.stop_requested:
            break
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * lr_factor(run.local_step, fraction)
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
        run.step += 1
        loss_value = float(loss.detach())
        elapsed = clock.elapsed()
        fraction = budget_used()
        session = elapsed - run.elapsed_before
        rate = (run.step - first_step) / max(session, 1e-9)
        eta = max(0.0, (1 - fraction) / max(fraction, 1e-9) * elapsed) if fraction > 0 else None
        epoch = (run.local_step - 1) // config.steps_per_epoch
        run.history.append({"step": run.step, "epoch": epoch, "loss": loss_value, "time": elapsed})
        yield StepDone(run.step, epoch, loss_value, optimizer.param_groups[0]["lr"], elapsed, min(fraction, 1.0),
                       eta, rate)

        if run.local_step % config.steps_per_epoch == 0:
            event = validate_now()
            if event is not None:
                run.history[-1].update({f"val_{k}": v for k, v in run.metrics.items()})
                yield event
                since_best = 0 if event.is_best else since_best + 1
                if config.patience and since_best >= config.patience:
                    early_stopped = True
                    yield Notice(f"early stop: the validation score did not improve in {since_best} checks", "info")
                    break
        now = time.perf_counter()
        if preview_n is not None and config.preview_every and now - last_preview >= config.preview_every:
            if task.direct_model:
                data = task.preview_direct(problem, forward, preview_n)
            else:
                data = task.postprocess(apply_model(xn[preview_n]), dict(problem.meta, **output_context))
                if task.output_kind == "image":
                    data = _image_sample_layout(data, layout)
            last_preview = time.perf_counter()
            yield PreviewReady(run.step, layout.sample_index(preview_n), data, task.output_kind)

    stopped_early = control.stop_requested
    if run.step == first_step:
        if resume is not None and not stopped_early:
            raise ConfigError("the checkpoint has already used its whole budget; give more epochs or a longer "
                              "time limit to train further")
        raise InputError("training stopped before the first step; nothing to save")
    event = validate_now() if not early_stopped else None
    if event is not None:
        yield event
    metrics = dict(run.metrics)
    last = model.state_dict()
    has_best = run.best_state is not None and run.best_step != run.step and problem.select_best
    chosen = run.best_state if has_best else last
    if task.direct_model and run.best_state is not None:
        # direct tasks validate cheaply: report the scores of the weights actually saved
        keep = {k: v.detach().clone() for k, v in last.items()}
        model.load_state_dict(run.best_state)
        best_val = run_validation()
        model.load_state_dict(keep)
        if best_val is not None:
            metrics, problem.meta["validation_report"] = dict(best_val[0]), best_val[2]
    if run.best_step is not None:
        metrics["best_score"] = run.best_score
    seconds = clock.elapsed()
    extra_keys: dict[str, Any] = {
        "training": {"steps": run.step, "seconds": seconds, "stopped_early": stopped_early,
                     "early_stopped": early_stopped,
                     "last_loss": float(np.mean([h["loss"] for h in run.history[-20:]])),
                     "best_step": run.best_step},
        "resume": training_state(run, optimizer, scaler, rng, device, seconds, not stopped_early, fingerprint),
    }
    if has_best:
        extra_keys["last_state_dict"] = {k: v.detach().cpu().clone() for k, v in last.items()}
    ckpt = build_checkpoint(
        model_name=config.model, model_config=model_config, state_dict=chosen, task=task.name,
        task_meta=problem.meta, normalizer=normalizer, axes=layout.axes, spatial_dims=layout.spatial_dims,
        in_channels=in_channels, out_channels=problem.out_channels, metrics=metrics,
        history=run.history, train_config=config.to_dict(), extra=extra_keys,
    )
    ckpt["data"]["temporal_context"] = context
    return TrainResult(ckpt, run.history, metrics, stopped_early, run.step, seconds)


def train_sync(image, annotations=None, config: TrainConfig | None = None, callback=None, **kwargs) -> TrainResult:
    """Run :func:`train` to the end (scripts, tests); ``callback`` sees each event."""
    return drain(train(image, annotations, config, **kwargs), callback)
