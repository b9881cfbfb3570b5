"""Live training: a run that keeps learning while the user annotates.

:func:`live_train` is what ``train(..., live=inbox)`` runs. The worker keeps its own
copy of the annotations; between two steps it takes every message from ``inbox``:

* :class:`~.edits.AnnotationEdit` — new values in a box of the annotation layer
  (brush, eraser, fill). The task's targets and sampler are rebuilt from the updated
  copy before the next step; patches are drawn near recent edits more often
  (:class:`~.edits.EditHistory`) while older annotations are replayed.
* :class:`~.edits.ClassesChanged` — classification: new class annotations.
* :class:`~.edits.ViewChanged` — what the user looks at: the next previews predict it.

A class painted for the first time grows the network's output (the other classes
keep their weights: :func:`~.grow.remap_classes`). Every couple of seconds a
:class:`~..events.LivePreview` predicts the view from the latest weights, with an
uncertainty map and per-object confidence. Until the annotations are enough to
train on (e.g. two classes painted), it waits and says why (:class:`~..events.LiveWaiting`).
"""

from __future__ import annotations

import queue
import time
from collections.abc import Generator
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..control import ActiveClock, Control, run_clocked
from ..errors import InputError
from ..events import LivePreview, LiveWaiting, Notice, TrainingStarted, TrainResult
from ..runtime.device import describe
from ..settings.defaults import LIVE_PREVIEW_EVERY
from ..training.loop import Trainer
from ..training.optim import make_optimizer
from ..training.setup import set_up
from .edits import AnnotationEdit, ClassesChanged, EditHistory, ViewChanged, sample_boxes
from .grow import remap_classes
from .uncertainty import entropy_map, object_confidence

#: Context around the view that the preview predicts too (then crops), so its borders are right.
VIEW_MARGIN = 32
#: Largest view predicted (pixels); a bigger view is previewed around its centre.
MAX_VIEW_PIXELS = 1 << 20
#: While waiting for annotations, how often the generator yields (so Stop and closing are prompt).
WAIT_TICK = 0.25


def train_live(image: Any, annotations: Any = None, config: TrainConfig | None = None, *,
               inbox: queue.Queue | Any, control: Control | None = None, preview_index=0, axes: str | None = None,
               rgb: bool = False, axes_hint: str | None = None, extra: dict | None = None
               ) -> Generator[Any, None, TrainResult]:
    """Train on one in-memory image while its annotations change: the engine's *live* mode.

    Like :func:`~..training.loop.train` (same parameters and result), plus ``inbox``: a
    queue the front end puts :class:`~.edits.AnnotationEdit`, :class:`~.edits.ClassesChanged`
    and :class:`~.edits.ViewChanged` messages on while training runs. Yields the usual
    events, :class:`~..events.LivePreview` of the view every couple of seconds, and
    :class:`~..events.LiveWaiting` while the annotations are not yet enough to train on.
    Training goes on until ``control`` stops it or the budget (time or epochs) is used.
    """
    clock = ActiveClock()
    control = control or Control()
    return (yield from run_clocked(
        _live(image, annotations, config, inbox=inbox, control=control, clock=clock, preview_index=preview_index,
              extra=extra, axes=axes, rgb=rgb, axes_hint=axes_hint), clock))


def _live(image, annotations, config, *, inbox, control: Control, clock: ActiveClock, preview_index, extra,
          **set_up_args) -> Generator[Any, None, TrainResult]:
    labels = None if annotations is None else np.array(annotations, copy=True)  # the worker's own copy
    extra = dict(extra or {})
    pending: list = []
    while True:
        try:
            setup = set_up(image, labels, config, extra=extra or None, **set_up_args)
            break
        except InputError as err:  # not enough annotation yet: wait for the user's next strokes
            yield LiveWaiting(str(err))
            arrived = yield from _wait(inbox, control)
            if not arrived:
                raise InputError(f"live training stopped before it could start: {err}") from None
            for message in arrived:
                pending.append(message)
                if isinstance(message, AnnotationEdit) and labels is not None:
                    labels[message.box] = message.values
                elif isinstance(message, ClassesChanged) and labels is not None:
                    extra["classes"] = message.read(labels)
    if setup.dataset is not None:
        setup.close()
        raise InputError("live training works on one image held in memory; train a data set without Live")
    for message, level in setup.notices:
        yield Notice(message, level)
    trainer = LiveTrainer(setup, control, clock, preview_index, inbox, labels, extra)
    for message in pending:  # what arrived while waiting counts as recent annotation
        trainer.take(message)
    trainer.dirty = False  # the set-up already used those annotations
    return (yield from trainer.run())


def _wait(inbox, control: Control) -> Generator[Any, None, list]:
    """Messages as soon as some arrive (``[]`` when stopped first); yields now and then so Stop works."""
    while not control.stop_requested:
        first = _get(inbox, timeout=WAIT_TICK)
        if first is not None:
            arrived = [first]
            while (more := _get(inbox)) is not None:
                arrived.append(more)
            return arrived
        yield None
    return []


def _get(inbox, timeout: float = 0.0):
    try:
        return inbox.get(timeout=timeout) if timeout > 0 else inbox.get_nowait()
    except queue.Empty:
        return None


class LiveTrainer(Trainer):
    """:class:`~..training.loop.Trainer` that takes annotation edits and previews the user's view."""

    def __init__(self, setup, control: Control, clock: ActiveClock, preview_index, inbox, labels, extra: dict):
        super().__init__(setup, control, clock, preview_index)
        self.inbox, self.labels, self.extra = inbox, labels, extra
        self.history = EditHistory()
        self.view: tuple[slice, ...] | None = None
        self.received = 0  # edits applied to the copy
        self.trained = 0  # edits the weights have trained on (at least one step)
        self.dirty = False
        self.problem_note: str | None = None
        self.every = min(LIVE_PREVIEW_EVERY, setup.config.preview_every or LIVE_PREVIEW_EVERY)
        self._attach_sampler()

    # ---------------------------------------------------------------- the loop

    def run(self) -> Generator[Any, None, TrainResult]:
        s, config, run = self.s, self.config, self.run_state
        yield TrainingStarted(s.task.name, config.model, describe(s.device),
                              sum(p.numel() for p in s.model.parameters()), s.problem.n_train_pixels,
                              s.problem.n_val_pixels, config.time_limit, self.total_steps, s.problem.patch, run.step,
                              s.problem.unit)
        first_step = run.step
        last_preview = time.perf_counter() - self.every
        self.clock.reset(run.elapsed_before)
        s.model.train()
        while True:
            fraction = self.budget_used()
            if fraction >= 1.0 or self.control.stop_requested:
                break
            yield from self.receive()
            seen = self.received
            yield self.step(fraction, first_step)
            self.trained = seen
            if run.local_step % config.steps_per_epoch == 0:
                event = self.validate()
                if event is not None:
                    run.history[-1].update({f"val_{k}": v for k, v in run.metrics.items()})
                    yield event
            if self.preview_n is not None and time.perf_counter() - last_preview >= self.every:
                yield self.live_preview()
                last_preview = time.perf_counter()
        return (yield from self.finish(first_step, False))

    # ---------------------------------------------------------------- messages

    def take(self, message) -> None:
        """Apply one message to the worker's state (no rebuild yet)."""
        if isinstance(message, AnnotationEdit):
            if self.labels is None:
                return
            self.labels[message.box] = message.values
            for sample, box in sample_boxes(self.s.layout, message.box):
                self.history.add(sample, box, message.time)
            self.received += 1
            self.dirty = True
        elif isinstance(message, ClassesChanged):
            self.extra["classes"] = message.read(self.labels)
            self.received += 1
            self.dirty = True
        elif isinstance(message, ViewChanged):
            self.view = tuple(message.box)

    def receive(self) -> Generator[Notice, None, None]:
        """Take every waiting message; rebuild the task's targets when the annotations changed."""
        while True:
            message = _get(self.inbox)
            if message is None:
                break
            self.take(message)
        if self.dirty:
            self.dirty = False
            yield from self.rebuild()

    def rebuild(self) -> Generator[Notice, None, None]:
        """Bind the task to the updated annotations; grow the network for new classes."""
        s, config = self.s, self.config
        labels = s.layout.labels_to_canonical(self.labels) if self.labels is not None else None
        try:
            problem = s.task.make_problem(s.inputs, labels, config, s.rng, s.divisor, self.extra or None)
        except InputError as err:  # e.g. a class erased down to nothing: keep training on the last good set
            if str(err) != self.problem_note:
                self.problem_note = str(err)
                yield Notice(f"live: {err}; training goes on with the annotations it had", "warning")
            return
        self.problem_note = None
        old, new = s.problem.meta.get("class_names"), problem.meta.get("class_names")
        if old and new and list(old) != list(new) and remap_classes(s.model, list(old), list(new)):
            self._refresh_optimizer()
            added = [str(n) for n in new if n not in old]
            if added:
                yield Notice(f"new class {', '.join(added)}: the network grew an output for it", "info")
        # scores on a changing validation set are not comparable: the newest weights are kept
        problem.select_best = False
        self.run_state.best_state, self.run_state.best_step = None, None
        self.run_state.best_score = -np.inf
        s.problem = problem
        self._attach_sampler()

    def _attach_sampler(self) -> None:
        sampler = self.s.problem.sampler
        if self.labels is None or not hasattr(sampler, "picker"):
            return
        if self.s.task.name == "semantic":
            annotated = self.s.layout.labels_to_canonical(self.labels) > 0
        else:  # instance masks are dense: every pixel (0 = background) is an annotation
            annotated = np.ones((self.s.layout.n_samples, *self.s.layout.spatial_shape), bool)
        sampler.picker = lambda rng: self.history.pick(rng, annotated)

    def _refresh_optimizer(self) -> None:
        """A new optimiser over the grown network; parameters it had keep their state (Adam moments)."""
        s = self.s
        old = s.optimizer
        s.optimizer = make_optimizer(s.model.parameters(), self.config)
        for p in s.model.parameters():
            if p in old.state:
                s.optimizer.state[p] = old.state[p]

    # ---------------------------------------------------------------- previews of the view

    def view_box(self) -> tuple[int, tuple[slice, ...]]:
        """The sample and spatial box to preview: the user's view, or the preview sample whole."""
        layout = self.s.layout
        whole = tuple(slice(0, n) for n in layout.spatial_shape)
        if self.view is None:
            return self.preview_n, whole
        try:
            sample, box = sample_boxes(layout, self.view)[0]
        except (ValueError, IndexError):
            return self.preview_n, whole
        box = tuple(slice(max(0, b.start), min(n, b.stop)) for b, n in zip(box, layout.spatial_shape))
        if any(b.stop <= b.start for b in box):
            return sample, whole
        size = np.prod([b.stop - b.start for b in box])
        if size > MAX_VIEW_PIXELS:  # zoomed far out: the centre of the view
            shrink = (MAX_VIEW_PIXELS / size) ** (1 / len(box))
            box = tuple(_shrunk(b, shrink) for b in box)
        return int(sample), box

    def live_preview(self) -> LivePreview:
        """Predict what the user looks at with the latest weights; how sure the model is there."""
        s = self.s
        n, box = self.view_box()
        user_box = _user_box(s.layout, n, box)
        if s.task.direct_model:
            data = s.task.preview_direct(s.problem, self.forward, n)
            whole = _user_box(s.layout, n, tuple(slice(0, m) for m in s.layout.spatial_shape))
            return LivePreview(self.run_state.step, whole, data, None, {}, s.task.output_kind, self.trained)
        grown = tuple(slice(max(0, b.start - VIEW_MARGIN), min(m, b.stop + VIEW_MARGIN))
                      for b, m in zip(box, s.layout.spatial_shape))
        probs = self.apply_model(s.inputs[n][(slice(None), *grown)])
        probs = probs[(slice(None), *(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box, grown)))]
        data = s.task.postprocess(probs, dict(s.problem.meta, **s.output_context))
        if s.task.output_kind != "labels":
            return LivePreview(self.run_state.step, user_box, data, None, {}, s.task.output_kind, self.trained)
        return LivePreview(self.run_state.step, user_box, data, entropy_map(probs), object_confidence(data, probs),
                           "labels", self.trained)


def _shrunk(b: slice, factor: float) -> slice:
    size = max(1, int((b.stop - b.start) * factor))
    centre = (b.start + b.stop) // 2
    return slice(centre - size // 2, centre - size // 2 + size)


def _user_box(layout, n: int, spatial: tuple[slice, ...]) -> tuple[slice, ...]:
    """A sample number and a spatial box -> the box over the image's axes without C."""
    index = dict(zip(layout.batch_axes, layout.sample_index(n)))
    index.update({a: b for a, b in zip(layout.spatial_axes, spatial)})
    return tuple(index[a] if isinstance(index[a], slice) else slice(index[a], index[a] + 1)
                 for a in layout.output_axes)
