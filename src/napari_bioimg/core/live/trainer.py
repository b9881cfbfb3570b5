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
keep their weights: :func:`~.grow.remap_classes`); its new output learns at the full
rate while the rest of the network warms up again, and patches are centred on each
painted class in turn (:class:`~.edits.ClassCentres`), so a class of a few thin
strokes is learnt too. Every couple of seconds a :class:`~..events.LivePreview`
predicts the view from the averaged recent weights (:class:`~.average.WeightAverage`),
with an uncertainty map and per-object confidence; the session's result is those
averaged weights too. The first previews come from a pixel classifier at once
(:mod:`.first`), until the network predicts new strokes better. Until the
annotations are enough to train on (e.g. two classes painted), it waits and says why
(:class:`~..events.LiveWaiting`).

A live session has no time limit: it runs until Stop. After ``IDLE_PAUSE`` seconds
without an edit it pauses itself (:class:`~..events.LivePaused`) and the next edit
resumes it; the paused time does not count as training. Live training is
:class:`~..training.loop.Trainer`'s loop with its hooks overridden.
"""

from __future__ import annotations

import contextlib
import copy
import queue
import time
from collections.abc import Generator
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..control import ActiveClock, Control, run_clocked
from ..errors import InputError
from ..events import LivePaused, LivePreview, LiveWaiting, Notice, StepDone, TrainResult
from ..runtime.context import torch_random
from ..settings.defaults import LIVE_PREVIEW_EVERY
from ..training.loop import Trainer, run_seed
from ..training.setup import set_up
from .average import WeightAverage
from .edits import AnnotationEdit, ClassesChanged, EditHistory, ViewChanged, sample_boxes
from .first import FirstPreviews, first_previews
from .grow import remap_classes
from .learning import grouped_optimizer, live_picker, set_live_rate
from .uncertainty import entropy_map, object_confidence
from .view import user_box, view_box

#: Seconds between two pixel-classifier previews while strokes keep coming.
QUICK_EVERY = 0.3
#: Context around the view that the preview predicts too (then crops), so its borders are right.
VIEW_MARGIN = 32
#: While waiting for annotations, how often the generator yields (so Stop and closing are prompt).
WAIT_TICK = 0.25
#: Seconds without an edit after which a live session pauses itself (the next edit resumes it).
IDLE_PAUSE = 180.0


def train_live(image: Any, annotations: Any = None, config: TrainConfig | None = None, *,
               inbox: queue.Queue | Any, control: Control | None = None, preview_index=0, axes: str | None = None,
               rgb: bool = False, axes_hint: str | None = None, extra: dict | None = None
               ) -> Generator[Any, None, TrainResult]:
    """Train on one in-memory image while its annotations change: the engine's *live* mode.

    Like :func:`~..training.loop.train` (same parameters and result), plus ``inbox``: a
    queue the front end puts :class:`~.edits.AnnotationEdit`, :class:`~.edits.ClassesChanged`
    and :class:`~.edits.ViewChanged` messages on while training runs. Yields the usual
    events, :class:`~..events.LivePreview` of the view every couple of seconds,
    :class:`~..events.LiveWaiting` while the annotations are not yet enough to train on, and
    :class:`~..events.LivePaused` when no edit came for ``IDLE_PAUSE`` seconds. Training goes
    on until ``control`` stops it: the configuration's time limit, epochs and patience do not
    end a live session. The result holds the averaged recent weights.
    """
    clock = ActiveClock()
    control = control or Control()
    return (yield from run_clocked(
        _live(image, annotations, config, inbox=inbox, control=control, clock=clock, preview_index=preview_index,
              extra=extra, axes=axes, rgb=rgb, axes_hint=axes_hint), clock))


def _live(image, annotations, config, **kwargs) -> Generator[Any, None, TrainResult]:
    with torch_random(run_seed(config)) as reseed:  # as a run's: the process's streams are put back at the end
        return (yield from _session(image, annotations, config, reseed=reseed, **kwargs))


def _session(image, annotations, config, *, inbox, control: Control, clock: ActiveClock, preview_index, extra,
             reseed, **set_up_args) -> Generator[Any, None, TrainResult]:
    labels = None if annotations is None else np.array(annotations, copy=True)  # the worker's own copy
    extra = dict(extra or {})
    pending: list = []
    first = first_previews(image, config, **set_up_args) if labels is not None else None
    view, received = None, 0
    while True:
        try:
            reseed()  # each try starts from the seed, so the network is the one the first good strokes get
            setup = set_up(image, labels, config, extra=extra or None, **set_up_args)
            break
        except InputError as err:  # not enough annotation yet: wait for the user's next strokes
            yield LiveWaiting(str(err))
            if first is not None and not first.classifiers:
                first.prepare(preview_index if isinstance(preview_index, int) else 0)
            arrived = yield from _wait(inbox, control)
            if not arrived:
                raise InputError(f"live training stopped before it could start: {err}") from None
            for message in arrived:
                pending.append(message)
                if isinstance(message, AnnotationEdit) and labels is not None:
                    labels[message.box] = message.values
                    received += 1
                elif isinstance(message, ClassesChanged) and labels is not None:
                    extra["classes"] = message.read(labels)
                elif isinstance(message, ViewChanged):
                    view = tuple(message.box)
            if first is not None:  # the first strokes answered at once, before the network is even built
                event = first.preview(lambda: first.layout.labels_to_canonical(labels), view, 0, 0, received)
                if event is not None:
                    yield event
    if setup.dataset is not None:
        setup.close()
        raise InputError("live training works on one image held in memory; train a data set without Live")
    for message, level in setup.notices:
        yield Notice(message, level)
    trainer = LiveTrainer(setup, control, clock, preview_index, inbox, labels, extra, first)
    for message in pending:  # what arrived while waiting counts as recent annotation
        trainer.take(message, score=False)
    trainer.dirty = False  # the set-up already used those annotations
    try:
        return (yield from trainer.run())
    finally:
        setup.close()


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
    """:class:`~..training.loop.Trainer` whose hooks take annotation edits, preview the user's view from
    averaged weights, pause when idle and run until Stop."""

    def __init__(self, setup, control: Control, clock: ActiveClock, preview_index, inbox, labels, extra: dict,
                 first: FirstPreviews | None = None):
        super().__init__(setup, control, clock, preview_index)
        # no budget: a live session runs until Stop (the saved configuration says so)
        self.config = copy.copy(self.config)
        self.config.time_limit, self.config.patience = None, None
        self.total_steps = None
        self.inbox, self.labels, self.extra, self.first = inbox, labels, extra, first
        if first is not None:
            first.fitted_on.clear()  # fit again without the strokes held apart for validation
        self.history = EditHistory()
        self.view: tuple[slice, ...] | None = None
        self.received = 0  # edits applied to the copy
        self.trained = 0  # edits the weights have trained on (at least one step)
        self.seen = 0
        self.dirty = False
        self.problem_note: str | None = None
        self.every = min(LIVE_PREVIEW_EVERY, setup.config.preview_every or LIVE_PREVIEW_EVERY)
        self.last_edit = time.monotonic()
        self.grown_at: int | None = None
        self.net_at = self.quick_at = -np.inf
        setup.problem.select_best = False  # scores on a changing validation set are not comparable
        self._regroup_optimizer()
        self.average = WeightAverage(setup.model)
        self._attach_sampler()

    # ---------------------------------------------------------------- the loop's hooks

    def should_stop(self, fraction: float) -> bool:
        return self.control.stop_requested  # neither the time limit nor epochs end a live session

    def before_step(self) -> Generator[Any, None, None]:
        if time.monotonic() - self.last_edit >= IDLE_PAUSE and not self.control.stop_requested:
            yield from self.pause()
        yield from self.receive()
        self.seen = self.received

    def after_step(self, done: StepDone) -> None:
        self.trained = self.seen
        self.average.update(self.s.model)

    def preview_due(self, since: float, cost: float) -> bool:
        if self.preview_n is None or self.control.stop_requested:  # Stop: the result comes next, not a preview
            return False
        now = time.perf_counter()
        quick = self._quick_shown() and self.first.stale(self.view_box()[0], self.received)
        return now - self.net_at >= self.every or (quick and now - self.quick_at >= QUICK_EVERY)

    def make_preview(self) -> LivePreview:
        now = time.perf_counter()
        network = None
        if now - self.net_at >= self.every or not self._quick_shown():
            network = self.live_preview()
            self.net_at = time.perf_counter()
        if self._quick_shown():
            quick = self.first.preview(self._train_labels, self.view, self.preview_n, self.run_state.step,
                                       self.received)
            self.quick_at = time.perf_counter()
            if quick is not None:
                return quick
        return network if network is not None else self.live_preview()

    def choose_final(self, last: dict) -> tuple[dict, bool]:
        self.run_state.best_state = None  # never an old "best" that may not know a class painted since
        return last, False

    def schedule(self, fraction: float) -> None:
        set_live_rate(self.s.optimizer, self.config, self.run_state.local_step, self.run_state.step, self.grown_at)

    def validate(self):
        with self.averaged():
            event = super().validate()
        if event is not None and self._quick_shown():
            self.first.judge(self.s.problem, event.metrics.get("accuracy"))
        return event

    def finish(self, first_step: int, early_stopped: bool) -> Generator[Any, None, TrainResult]:
        """The result is the averaged recent weights: they are loaded before the last validation."""
        if self.run_state.step > first_step:
            self.s.model.load_state_dict(self.average.averaged())
        return (yield from super().finish(first_step, early_stopped))

    @contextlib.contextmanager
    def averaged(self):
        """The averaged weights in the model for a while (previews, validation)."""
        own = self.average.swap_into(self.s.model)
        try:
            yield
        finally:
            self.s.model.load_state_dict(own)

    # ---------------------------------------------------------------- messages

    def take(self, message, score: bool = True) -> None:
        """Apply one message to the worker's state (no rebuild yet)."""
        if isinstance(message, AnnotationEdit):
            if self.labels is None:
                return
            if score and self.first is not None:
                self.first.score(message)
            self.labels[message.box] = message.values
            for sample, box in sample_boxes(self.s.layout, message.box):
                self.history.add(sample, box, message.time)
            self.received += 1
            self.dirty = True
            self.last_edit = time.monotonic()
        elif isinstance(message, ClassesChanged):
            self.extra["classes"] = message.read(self.labels)
            self.received += 1
            self.dirty = True
            self.last_edit = time.monotonic()
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

    def pause(self) -> Generator[Any, None, None]:
        """No edit for a while: wait (the clock stands still) until the next edit or Stop."""
        idle = time.monotonic() - self.last_edit
        yield LivePaused(idle)
        elapsed = self.clock.elapsed()
        while not self.control.stop_requested:
            arrived = yield from _wait(self.inbox, self.control)
            for message in arrived:
                self.take(message)
            if self.dirty or not arrived:
                break
        self.clock.reset(elapsed)
        self.last_edit = time.monotonic()

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
            keep = [(j, list(old).index(name)) for j, name in enumerate(new) if name in old]
            self.average.regrow(s.model, keep, ("head.weight", "head.bias"))
            self._regroup_optimizer()
            added = [str(n) for n in new if n not in old]
            if added:
                self.grown_at = self.run_state.step
                if self.first is not None:
                    self.first.new_class()
                yield Notice(f"new class {', '.join(added)}: the network grew an output for it", "info")
        problem.select_best = False
        self.run_state.best_state, self.run_state.best_step = None, None
        self.run_state.best_score = -np.inf
        s.problem = problem
        self._attach_sampler()

    def _attach_sampler(self) -> None:
        sampler = self.s.problem.sampler
        if self.labels is not None and hasattr(sampler, "picker"):
            # centres on training pixels only: a patch around held-apart strokes alone has nothing to learn from
            labels = self._train_labels() if self.s.problem.val_regions else \
                self.s.layout.labels_to_canonical(self.labels)
            sampler.picker = live_picker(self.history, labels, self.s.task.wants_scribbles, self.s.rng)

    def _regroup_optimizer(self) -> None:
        self.s.optimizer = grouped_optimizer(self.s.model, self.s.optimizer, self.config)

    # ---------------------------------------------------------------- previews of the view

    def view_box(self) -> tuple[int, tuple[slice, ...]]:
        """The sample and spatial box to preview: the user's view, or the preview sample whole."""
        return view_box(self.s.layout, self.view, self.preview_n)

    def _train_labels(self) -> np.ndarray:
        """The strokes outside the held-apart regions, ``(N, *spatial)`` (what the pixel classifier fits on)."""
        labels = self.s.layout.labels_to_canonical(self.labels).copy()
        for r in self.s.problem.val_regions or ():
            labels[(r.sample, *r.box)] = 0
        return labels

    def _quick_shown(self) -> bool:
        return self.first is not None and self.first.in_charge

    def live_preview(self) -> LivePreview:
        """Predict what the user looks at with the averaged weights; how sure the model is there."""
        s = self.s
        n, box = self.view_box()
        ubox = user_box(s.layout, n, box)
        with self.averaged():
            if s.task.predicts_items:
                data = s.task.preview_direct(s.problem, self.forward, n)
                whole = user_box(s.layout, n, tuple(slice(0, m) for m in s.layout.spatial_shape))
                return LivePreview(self.run_state.step, whole, data, None, {}, s.task.output_kind, self.trained)
            grown = tuple(slice(max(0, b.start - VIEW_MARGIN), min(m, b.stop + VIEW_MARGIN))
                          for b, m in zip(box, s.layout.spatial_shape))
            probs = self.apply_model(s.inputs[n][(slice(None), *grown)])
        probs = probs[(slice(None), *(slice(b.start - g.start, b.stop - g.start) for b, g in zip(box, grown)))]
        data = s.task.postprocess(probs, dict(s.problem.meta, **s.output_context))
        if s.task.output_kind != "labels":
            return LivePreview(self.run_state.step, ubox, data, None, {}, s.task.output_kind, self.trained)
        if self.first is not None:
            held = bool(self.s.problem.val_regions)  # then the validation decides (judge)
            painted = None if held else self.s.layout.labels_to_canonical(self.labels)[(n, *box)]
            self.first.seen_network(n, box, data, painted)
        return LivePreview(self.run_state.step, ubox, data, entropy_map(probs), object_confidence(data, probs),
                           "labels", self.trained)
