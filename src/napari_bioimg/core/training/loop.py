"""Training as a generator of typed progress events.

``train(...)`` yields :mod:`..events` objects and *returns* a :class:`TrainResult`
holding a checkpoint dict. A GUI wraps it in napari's ``thread_worker``; a script
calls :func:`train_sync`. A :class:`Control` stops it cleanly at the next step,
still returning the model trained so far. The parts of a run are made by
:func:`.setup.set_up`; :class:`Trainer` drives them.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from ..config import TrainConfig
from ..control import ActiveClock, Control, drain, run_clocked
from ..errors import ConfigError, InputError
from ..events import Notice, PreviewReady, StepDone, TrainingStarted, TrainResult, ValidationDone
from ..formats.checkpoint import build_checkpoint
from ..inference.tiling import tiled_apply
from ..runtime.context import torch_random
from ..runtime.device import autocast, describe
from ..runtime.fast import inference_model, memory_format
from ..settings.defaults import OVERLAP
from .calibrate import HeldOut, calibrate
from .optim import set_learning_rate
from .pacing import SLOW_CHECK, preview_wait, slow_notice
from .pretrain import pretrain
from .previewed import flat_index, image_sample_layout, set_index
from .reserve import EndReserve, region_pixels
from .resume import training_state
from .setup import TrainingSetup, set_up

VAL_MARGIN = 32
#: Seconds of training before the first live preview (later ones follow every ``preview_every``).
FIRST_PREVIEW = 1.0
#: 2D tile for previews and validation: a 512x512 frame is one tile (no overlap to recompute).
PREVIEW_TILE_2D = 512
#: Most pixels of a data set's image previewed (its centre): a preview costs about one validation.
PREVIEW_MAX_PIXELS = 1 << 20


def train(
    data: Any,
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
    """Train a model on one image (or stack) and its annotations, or on a data set of many images.

    Parameters
    ----------
    data
        An image: an array in the layout given by ``axes`` (guessed when ``None``);
        or a :class:`~..data.dataset.DataSet` (images of different sizes, their
        annotations, targets, splits and weights: :func:`~..data.collect.collect`,
        :func:`~..data.dataset.make_sample`), read patch by patch. One image is the
        one-sample case: a data set of one (:func:`.setup.as_dataset`).
    annotations
        Labels in the image's layout without its channel axis (``None`` for
        self-supervised tasks, and for a data set, which carries its own).
    config
        :class:`TrainConfig`; defaults train an instance U-Net for 120 s, and its
        ``None`` fields take the task's defaults. With ``resume`` it defaults to
        the checkpoint's own configuration.
    control
        Set :meth:`Control.stop` to finish early and still get the model.
    preview_index
        Which sample (frame/slice along the non-spatial axes) to preview while
        training; for a data set an image number or ``(image, plane)``; ``None``
        disables previews.
    init_checkpoint
        Start from these weights (fine-tuning, e.g. on corrected annotations); its
        task and model must match. A new budget and learning-rate schedule start,
        while step numbers and the loss history continue.
    resume
        A checkpoint written by an earlier (stopped) run: training continues from
        its last weights, optimizer, step, random streams and elapsed time, so that
        with the same data and budget it matches an uninterrupted run step for step.
    extra
        Further inputs some tasks take: ``"target"`` (restore: a clean image of the
        same pixels), ``"reference"`` (a clean image to validate against),
        ``"classes"`` (classification: class annotations).

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
        _train(data, annotations, config, control=control or Control(), preview_index=preview_index, clock=clock,
               axes=axes, rgb=rgb, axes_hint=axes_hint, init_checkpoint=init_checkpoint, resume=resume, extra=extra),
        clock))


def _train(data, annotations, config, *, control: Control, preview_index, clock: ActiveClock,
           **set_up_args) -> Generator[Any, None, TrainResult]:
    with torch_random(run_seed(config)):  # the run's own seed; the process's streams are put back at the end
        setup = set_up(data, annotations, config, **set_up_args)
        try:
            for message, level in setup.notices:
                yield Notice(message, level)
            if setup.config.pretrain or setup.config.pretrain_steps:
                if setup.resumed:
                    yield Notice("pretraining is skipped: the resumed run continues from trained weights", "info")
                else:
                    yield from pretrain(setup, control)
            return (yield from Trainer(setup, control, clock, preview_index).run())
        finally:
            setup.close()


def run_seed(config: TrainConfig | None) -> int | None:
    """The seed of torch's streams for a run (a resumed run restores its own afterwards)."""
    return (config or TrainConfig()).seed


def train_sync(data, annotations=None, config: TrainConfig | None = None, callback=None, **kwargs) -> TrainResult:
    """Run :func:`train` to the end (scripts, tests); ``callback`` sees each event."""
    return drain(train(data, annotations, config, **kwargs), callback)


class Trainer:
    """The step loop of one run: train, validate every epoch, preview every few seconds, then build the model file."""

    def __init__(self, setup: TrainingSetup, control: Control, clock: ActiveClock, preview_index=0):
        self.s, self.config, self.run_state = setup, setup.config, setup.run
        self.control, self.clock = control, clock
        preview_index = preview_index if setup.world is None or setup.world.main else None
        config, layout = setup.config, setup.layout
        self.total_steps = config.epochs * config.steps_per_epoch if config.epochs else None
        if setup.dataset is not None:
            self.preview_n = set_index(preview_index, setup.dataset)
        else:
            self.preview_n = flat_index(preview_index, layout.batch_shape, layout.n_samples)
        self.margin = int(getattr(setup.task, "val_margin", VAL_MARGIN))
        self.world = setup.world  # several processes (:mod:`.ddp`): steps through DDP, rank 0 validates
        self.net = setup.model if self.world is None else self.world.wrap(setup.model)
        self.reserve = EndReserve(config.time_limit, region_pixels(setup.problem.val_regions),
                                  region_pixels(setup.task.calibration_regions(setup.problem)))

    # ---------------------------------------------------------------- the loop

    def run(self) -> Generator[Any, None, TrainResult]:
        s, config, run = self.s, self.config, self.run_state
        yield TrainingStarted(s.task.name, config.model, describe(s.device), sum(p.numel() for p in s.model.parameters()),
                              s.problem.n_train_pixels, s.problem.n_val_pixels, config.time_limit, self.total_steps,
                              s.problem.patch, run.step, s.problem.unit)
        last_preview = time.perf_counter() - config.preview_every + min(config.preview_every, FIRST_PREVIEW)
        first_step = run.step
        since_best, preview_cost, early_stopped = 0, 0.0, False
        self.clock.reset(run.elapsed_before)  # the budget counts training and its end (.reserve), not the set-up
        s.model.train()
        while True:
            fraction = self.world.agree(self.budget_used(), self.control) if self.world else self.budget_used()
            if self.should_stop(fraction):
                break
            yield from self.before_step()
            done = self.step(fraction, first_step)
            self.reserve.step_seconds = 1 / max(done.steps_per_second, 1e-9)  # no step is begun past the limit
            yield done
            self.after_step(done)
            if run.local_step == 1 and (self.world is None or self.world.main):  # the rank that does the end
                self.reserve.probe(self.run_validation)  # the end's cost is known before the first epoch ends
            if run.local_step == SLOW_CHECK and config.time_limit and not self.total_steps:
                yield from slow_notice(done.steps_per_second, config.time_limit)  # now, not after a useless run
            if run.local_step % config.steps_per_epoch == 0:
                event = self.validate()
                if event is not None:
                    run.history[-1].update({f"val_{k}": v for k, v in run.metrics.items()})
                    yield event
                    since_best = 0 if event.is_best else since_best + 1
                    if config.patience and since_best >= config.patience:
                        early_stopped = True
                        yield Notice(f"early stop: the validation score did not improve in {since_best} checks", "info")
                        break
            if self.preview_due(time.perf_counter() - last_preview, preview_cost):
                started = time.perf_counter()
                event = self.make_preview()
                last_preview = time.perf_counter()
                preview_cost = last_preview - started  # a slow preview (a 3D stack on a CPU) comes less often
                yield event
        if 0 < run.local_step < SLOW_CHECK and config.time_limit and not (self.total_steps or self.control.stop_requested):
            yield from slow_notice(done.steps_per_second, config.time_limit)
        return (yield from self.finish(first_step, early_stopped))

    # ---------------------------------------------------------------- hooks: live training overrides them
    def should_stop(self, fraction: float) -> bool:
        """Whether the loop ends before the next step: the budget is used (after at least one step, unless
        resumed) or Stop was pressed."""
        used = fraction >= 1.0 and bool(self.run_state.local_step or self.s.resumed)
        return used or self.control.stop_requested

    def before_step(self) -> Generator[Any, None, None]:
        yield from ()  # events before a step (live: the user's edits taken in)

    def after_step(self, done: StepDone) -> None:
        """After each step's event (live: averaged weights, the edits trained on)."""

    def preview_due(self, since: float, cost: float) -> bool:
        """Preview now, ``since`` seconds after the last preview (which took ``cost`` seconds)?"""
        every = self.config.preview_every
        return self.preview_n is not None and bool(every) and since >= preview_wait(every, cost)

    def make_preview(self) -> Any:
        return self.preview()  # live: the user's view

    def choose_final(self, last: dict) -> tuple[dict, bool]:
        """The weights the model file keeps, and whether they differ from the ``last`` ones (both are kept)."""
        run = self.run_state
        has_best = run.best_state is not None and run.best_step != run.step and self.s.problem.select_best
        return (run.best_state if has_best else last), has_best

    def budget_used(self) -> float:
        """Fraction of the budget (time or epochs, whichever ends first) used."""
        elapsed = self.clock.elapsed()
        return max(elapsed / limit if (limit := self.reserve.training_seconds()) else 0.0,  # the end kept back
                   self.run_state.local_step / self.total_steps if self.total_steps else 0.0)

    def schedule(self, fraction: float) -> None:  # the learning rate for the next step (a hook too)
        set_learning_rate(self.s.optimizer, self.config, self.run_state.local_step, fraction)

    def step(self, fraction: float, first_step: int) -> StepDone:
        """One optimiser step on a sampled batch."""
        s, config, run = self.s, self.config, self.run_state
        self.schedule(fraction)
        xb, yb = s.problem.sampler.sample(config.batch_size, s.device)
        xb, yb = s.task.prepare_batch(xb, yb, s.rng, s.problem.meta)
        with autocast(s.device, config.amp):
            logits = self.net(xb)
        loss = s.task.loss(logits, yb, s.problem.meta)
        if not torch.isfinite(loss):
            raise InputError("the loss became NaN/inf: lower the learning rate or check the image for extreme values")
        s.optimizer.zero_grad(set_to_none=True)
        s.scaler.scale(loss).backward()
        if config.grad_clip:
            s.scaler.unscale_(s.optimizer)
            torch.nn.utils.clip_grad_norm_(s.model.parameters(), config.grad_clip)
        s.scaler.step(s.optimizer)
        s.scaler.update()
        run.step += 1
        loss_value = float(loss.detach())
        elapsed = self.clock.elapsed()
        fraction = self.budget_used()
        rate = (run.step - first_step) / max(elapsed - run.elapsed_before, 1e-9)
        eta = max(0.0, (1 - fraction) / max(fraction, 1e-9) * elapsed) if fraction > 0 else None
        epoch = (run.local_step - 1) // config.steps_per_epoch
        run.history.append({"step": run.step, "epoch": epoch, "loss": loss_value, "time": elapsed})
        return StepDone(run.step, epoch, loss_value, s.optimizer.param_groups[0]["lr"], elapsed, min(fraction, 1.0),
                        eta, rate)

    # ---------------------------------------------------------------- the model on held-apart data and previews

    def apply_model(self, region_input: np.ndarray) -> np.ndarray:
        """Activated outputs of ``(C, *spatial)`` input, tiled, with an inference copy of the model.

        The copy (batch-norm folded, channels-last) makes previews cheaper, and the
        training model is never switched to eval mode under the loop's feet.
        """
        s = self.s
        fast, channels_last = inference_model(s.model, s.device, s.layout.spatial_dims)
        fmt = memory_format(s.layout.spatial_dims)

        def fn(b):
            if channels_last:
                b = b.contiguous(memory_format=fmt)
            with autocast(s.device, self.config.amp):
                return s.task.activation(fast(b).float())

        # inference needs no gradients: 3D tiles twice the training patch per side (8x fewer, less overlap)
        tile = tuple(2 * p for p in s.problem.patch) if s.layout.spatial_dims == 3 else PREVIEW_TILE_2D
        return drain(tiled_apply(fn, region_input, s.problem.out_channels, tile, OVERLAP, s.divisor, 2, s.device))

    @torch.no_grad()
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Activated outputs of a batch in eval mode (item tasks)."""
        s = self.s
        s.model.eval()
        try:
            with autocast(s.device, self.config.amp):
                return s.task.activation(s.model(batch.to(s.device)).float())
        finally:
            s.model.train()

    def run_validation(self) -> tuple[dict, float, dict | None] | None:
        """``(metrics, score, report)`` of the current weights on the held-apart data, or ``None`` without any."""
        s, problem = self.s, self.s.problem
        started = time.perf_counter()
        if s.task.predicts_items:
            return self.reserve.timed(started, s.task.validate_direct(problem, self.forward))
        if not problem.val_regions:
            return None
        outs = []
        for r in problem.val_regions:
            source = problem.val_inputs.get(r.sample) if problem.val_inputs else None
            source = s.inputs[r.sample] if source is None else source  # a data set's crops carry their margin
            grown = tuple(slice(max(0, b.start - self.margin), min(n, b.stop + self.margin))
                          for b, n in zip(r.box, source.shape[1:]))
            out = self.apply_model(source[(slice(None), *grown)])
            inner = tuple(slice(b.start - g.start, b.stop - g.start) for b, g in zip(r.box, grown))
            outs.append(out[(slice(None), *inner)])
        return self.reserve.scored(started, lambda: (*s.task.validate(problem, outs), None))  # the end's cost

    def validate(self) -> ValidationDone | None:
        """Validate, keep the best weights so far, and say so."""
        run = self.run_state
        val = self.run_validation() if self.world is None else self.world.shared(self.run_validation)
        if val is None:
            return None
        run.metrics, score, report = val
        is_best = score > run.best_score
        if is_best:
            run.best_score, run.best_step = score, run.step
            run.best_state = copy.deepcopy(self.s.model.state_dict())
        return ValidationDone(run.step, (run.local_step - 1) // self.config.steps_per_epoch, run.metrics, score,
                              is_best, report, self.s.problem.val_size, self.s.problem.val_unit)

    def preview(self) -> PreviewReady:
        """The current model's result on the previewed sample."""
        s, n = self.s, self.preview_n
        if s.dataset is not None:
            return self._preview_set(*n)
        if s.task.predicts_items:
            data = s.task.preview_direct(s.problem, self.forward, n)
        else:
            data = s.task.postprocess(self.apply_model(s.inputs[n]), dict(s.problem.meta, **s.output_context))
            if s.task.output_kind == "image":
                data = image_sample_layout(data, s.layout)
        return PreviewReady(self.run_state.step, s.layout.sample_index(n), data, s.task.output_kind)

    def _preview_set(self, i: int, plane: int) -> PreviewReady:
        """The current model's result on one plane of a data set's image (its centre, for a huge one)."""
        s, ds = self.s, self.s.dataset
        shape = ds.layouts[i].spatial_shape
        side = int(round(PREVIEW_MAX_PIXELS ** (1 / len(shape))))
        box = tuple(slice(max(0, (n - side) // 2), max(0, (n - side) // 2) + min(n, side)) for n in shape)
        low, high = ds.ranges(i)
        context = dict(s.output_context, intensity_low=low, intensity_high=high,
                       source_dtype=ds[i].image.dtype.str)
        data = s.task.postprocess(self.apply_model(ds.read_image(i, plane, box)), dict(s.problem.meta, **context))
        if s.task.output_kind == "image":
            data = data if ds.n_channels > 1 else data[0]
        return PreviewReady(self.run_state.step, (i, plane), data, s.task.output_kind)

    # ---------------------------------------------------------------- the end

    def calibration(self, weights: dict) -> dict[str, Any]:
        """Post-processing settings chosen with ``weights`` on the task's held-out regions: as many as the time
        left allows in a timed run (the validation regions first)."""
        s = self.s
        stop = self.reserve.stop(self.clock.elapsed)
        regions = s.task.calibration_regions(s.problem)
        if stop is not None:
            regions = self.reserve.fit(regions, len(s.problem.val_regions), self.clock.elapsed())
        held = HeldOut(s.problem, regions, s.inputs, self.margin, s.divisor)
        return calibrate(s.model, s.task, held, self.config, weights, device=s.device, stop=stop)

    def finish(self, first_step: int, early_stopped: bool) -> Generator[Any, None, TrainResult]:
        """Validate a last time and build the model file from the chosen weights."""
        s, config, run = self.s, self.config, self.run_state
        stopped_early = self.control.stop_requested
        if run.step == first_step:
            if s.resumed and not stopped_early:
                raise ConfigError("the checkpoint has already used its whole budget; give more epochs or a longer "
                                  "time limit to train further")
            raise InputError("training stopped before the first step; nothing to save")
        event = self.validate() if not early_stopped else None
        if event is not None:
            yield event
        parallel = None if self.world is None else self.world.finish(s.model)  # rank 0 alone builds the file
        if parallel is not None and not self.world.main:
            return TrainResult(None, run.history, dict(run.metrics), stopped_early, run.step, self.clock.elapsed())
        metrics = dict(run.metrics)
        last = s.model.state_dict()
        chosen, has_best = self.choose_final(last)
        if s.task.predicts_items and run.best_state is not None:
            # item tasks validate cheaply: report the scores of the weights actually saved
            keep = {k: v.detach().clone() for k, v in last.items()}
            s.model.load_state_dict(run.best_state)
            best_val = self.run_validation()
            s.model.load_state_dict(keep)
            if best_val is not None:
                metrics, s.problem.meta["validation_report"] = dict(best_val[0]), best_val[2]
        if run.best_step is not None:
            metrics["best_score"] = run.best_score
        s.problem.meta.update(self.calibration(chosen))  # post-processing settings
        seconds = self.clock.elapsed()
        extra: dict[str, Any] = {
            "resume": training_state(run, s.optimizer, s.scaler, s.rng, s.device, seconds, not stopped_early,
                                     s.fingerprint, s.data_rng_state())}
        if has_best:
            extra["last_state_dict"] = {k: v.detach().cpu().clone() for k, v in last.items()}
        training = {"steps": run.step, "seconds": seconds, "stopped_early": stopped_early,
                    "early_stopped": early_stopped, "last_loss": float(np.mean([h["loss"] for h in run.history[-20:]])),
                    "best_step": run.best_step}
        if s.dataset is not None:
            training["data"] = s.dataset.describe()
        if s.pretrained:
            training["pretrain"] = s.pretrained
        if parallel is not None:
            training["data_parallel"] = parallel
        validation = {"size": s.problem.val_size, "unit": s.problem.val_unit} if run.metrics else None
        ckpt = build_checkpoint(
            model_name=config.model, model_config=config.model_config, state_dict=chosen, task=s.task.name,
            task_meta=s.problem.meta, normalizer=s.normalizer, axes=s.layout.axes, spatial_dims=s.layout.spatial_dims,
            in_channels=s.in_channels, out_channels=s.problem.out_channels, temporal_context=s.context,
            metrics=metrics, history=run.history, train_config=config.to_dict(), training=training,
            validation=validation, extra=extra,
        )
        return TrainResult(ckpt, run.history, metrics, stopped_early, run.step, seconds)
