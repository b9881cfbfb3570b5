"""A dock widget's working state: the current model, the current run, and every background worker.

One :class:`Session` per dock widget (the main widget's and *Explore objects*'): the one worker
stack. It starts the jobs of :mod:`.jobs` (train, predict, export, save a result, embed, explain)
in napari workers, each of a :class:`Job` kind, and re-emits what they report as plain signals;
it knows nothing of the form or of layers (the widgets wire those). All methods run on the GUI
thread; the workers only ever see copies or lazy arrays (:class:`Sample` data).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.qt.threading import WorkerBase, create_worker
from psygnal import Signal

from ..core import events as E
from ..core.control import Control
from . import jobs
from .dispatch import Handlers
from .lifetime import detach
from .progress import QuietGC

if TYPE_CHECKING:
    from ..core.formats.checkpoint import LoadedModel, ModelCard


class Job(str, Enum):
    """What a worker does; at most one worker of each kind runs at a time (the session's ``workers`` keys).

    A ``str`` enum: ``Job.TRAIN == "train"``, so scripts and tests may still ask for ``workers["train"]``.
    """

    TRAIN = "train"
    PREDICT = "predict"
    EXPORT = "export"
    SAVE = "save"
    EMBED = "embed"
    EXPLAIN = "explain"

    def __str__(self) -> str:
        return self.value


#: The jobs that are a :class:`Run`: Stop ends them, and Python's garbage collector is held off while one works
#: (:class:`QuietGC`).
RUNS = frozenset({Job.TRAIN, Job.PREDICT})


@dataclass
class Sample:
    """One image and what goes with it, as the worker will read it (copies or lazy arrays, never layers)."""

    image_key: int
    """The image layer's ``unique_id`` (results go beside it while it is in the viewer)."""
    image_name: str
    image: Any
    shape: tuple[int, ...]
    rgb: bool = False
    annotations: Any = None
    classes: Callable | None = None
    """Classification: turns the objects' label image (read in the worker) into class annotations."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Other inputs by the engine's names: ``target`` (restore), ``reference`` (a clean image to score against)."""
    reference_key: int | None = None
    reference_name: str | None = None
    """The clean image layer the result is scored against (``extra["reference"]`` holds its data)."""
    split: str = "auto"
    """Training data lists: ``"val"`` holds the image out whole for validation (``"auto"``: the engine decides)."""
    axes: str | None = None
    """This image's axes when it differs from the run's (images of a training data list; ``None``: the run's)."""


@dataclass
class Model:
    """The current model: its checkpoint dict, the typed card, and another tool's package as loaded."""

    checkpoint: dict
    card: ModelCard
    loaded: LoadedModel | None = None
    """A LoadedModel when the model is another tool's bioimage.io package (it predicts as it is)."""

    @classmethod
    def of(cls, checkpoint: dict, loaded=None) -> Model:
        from ..core.formats.checkpoint import ModelCard

        card = loaded.card if loaded is not None else ModelCard.of(checkpoint)
        return cls(checkpoint, card, loaded if card.foreign else None)

    @property
    def trainable(self) -> bool:
        """Whether it can be trained further, saved and exported by us."""
        return self.card.trainable and self.loaded is None

    @property
    def task(self):
        from ..core import get_task

        return self.loaded.task if self.loaded is not None else get_task(self.card.task)

    @property
    def predictor(self):
        """What the engine's ``predict`` takes."""
        return self.loaded if self.loaded is not None else self.checkpoint


@dataclass
class Run:
    """One training or prediction: its inputs, settings, and what its events said so far."""

    job: Job
    """:attr:`Job.TRAIN` or :attr:`Job.PREDICT`."""
    task: str
    model: str
    label: str
    """How result layers are tagged: ``<image> [<label>]``."""
    output_kind: str
    axes: str
    spatial_dims: int
    samples: list[Sample]
    objects: np.ndarray | None = None
    """Object classification: the objects' label image (a private copy)."""
    fine_tune: bool = False
    live: bool = False
    """Live training: keeps learning from the user's edits until Stop (see :mod:`.live`)."""
    preview_index: tuple[int, ...] | None = None
    select: int | None = None
    """The layer to keep selected while results are added (the user's annotations)."""
    control: Control = field(default_factory=Control)
    inbox: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    started_at: float = field(default_factory=time.perf_counter)
    # what the run's events said
    started: E.TrainingStarted | None = None
    last: E.StepDone | None = None
    val: E.ValidationDone | None = None
    progress: E.PredictProgress | jobs.CopyProgress | None = None
    trained: bool = False
    scores: dict | None = None
    preview: E.PreviewReady | None = None
    """The last preview shown (a ``PreviewReady``: its step and elapsed time say how early a model it shows)."""
    placeholder: int | None = None
    """The key of the empty result layer added when training started, until a result is written to it."""
    result_key: int | None = None
    colors: dict[int, int] = field(default_factory=dict)
    summary: str = ""
    """What the run came to, in words (training: steps, time, scores and how far to trust them)."""
    follows: Run | None = None
    """The training run this prediction completes (its image, with the final model)."""
    parts: list[Run] = field(default_factory=list)
    """Predicting several images at once: one run per image (each result goes into its own layer)."""

    def __post_init__(self) -> None:
        self.job = Job(self.job)  # "train" -> Job.TRAIN
        if self.job not in RUNS:
            raise ValueError(f"a Run trains or predicts, not {self.job}")

    @property
    def sample(self) -> Sample:
        return self.samples[0]

    @property
    def result_name(self) -> str:
        return f"{self.sample.image_name} [{self.label}]"

    def eta(self) -> float | None:
        """Seconds left: the engine's estimate while training, else from the progress so far and the time taken."""
        if self.job is Job.TRAIN and self.last is not None:
            return self.last.eta
        p = self.progress
        if p is None or not p.done or not p.total:
            return None
        elapsed = time.perf_counter() - self.started_at
        return elapsed * (p.total - p.done) / p.done


class Session:
    """Owns the model, the run and every worker; stops, pauses and shuts them down.

    Signals (all emitted on the GUI thread): ``event(run, ev)`` for each engine event,
    ``trained(run, TrainResult)``, ``predicted(run, (result, scores))``, ``failed(run, message)``,
    ``ended(run)`` when a run's worker is done (whatever the outcome), ``paused(bool)``,
    ``exported(path)``, ``saved(path)``, ``embedded(embedding)``, ``explained(explanation)`` (``None``
    when stopped) and ``changed()`` when busy-ness or the model changed. Jobs without a :class:`Run`
    (export, save, embed, explain) report their events as ``event(None, ev)``.
    """

    event = Signal(object, object)
    trained = Signal(object, object)
    predicted = Signal(object, object)
    failed = Signal(object, str)
    ended = Signal(object)
    paused = Signal(bool)
    exported = Signal(object)
    saved = Signal(object, object)
    embedded = Signal(object)
    explained = Signal(object)
    changed = Signal()

    def __init__(self, alive: Callable[[], bool] | None = None) -> None:
        self._alive = alive  # False once the widget's Qt objects are gone: then nothing is called back
        self.model: Model | None = None
        self.run: Run | None = None
        self.workers: dict[Job, WorkerBase] = {}
        """The running workers (napari's generator or function workers) by job."""
        self.closed = False
        self._abort = threading.Event()
        self._gc = QuietGC()
        self._record = Handlers({E.TrainingStarted: _keep("started"), E.StepDone: _keep("last"),
                                 E.ValidationDone: _keep("val"), E.PredictProgress: _keep("progress"),
                                 jobs.CopyProgress: _keep("progress")})
        """Event type -> the :class:`Run` field that keeps the latest one (the others pass through)."""

    # ---------------------------------------------------------------- state
    @property
    def busy(self) -> bool:
        return bool(self.workers)

    @property
    def trainable(self) -> bool:
        return self.model is not None and self.model.trainable

    @property
    def training(self) -> bool:
        return Job.TRAIN in self.workers

    def worker(self, job: Job | str) -> WorkerBase | None:
        """The running worker of ``job`` (a :class:`Job`, or its value such as ``"train"``), or ``None``."""
        return self.workers.get(job)

    def set_model(self, checkpoint: dict, loaded=None) -> Model:
        self.model = Model.of(checkpoint, loaded)
        self.changed.emit()
        return self.model

    # ---------------------------------------------------------------- runs
    def train(self, run: Run, config) -> None:
        """Train on ``run.samples`` (fine-tuning the current model when ``run.fine_tune``)."""
        init = self.model.checkpoint if run.fine_tune and self.trainable else None
        self.run = run
        self._start(Job.TRAIN, jobs.train_job, run.samples, config, axes=run.axes, control=run.control,
                    inbox=run.inbox, abort=self._abort, preview_index=run.preview_index, init_checkpoint=init,
                    live=run.live,
                    run=run, returned=lambda result: self._on_trained(run, result), paused=True)

    def predict(self, run: Run, **kwargs) -> None:
        """Predict ``run.sample`` with the current model; ``kwargs`` go to the engine's ``predict``."""
        self.run = run
        reference = run.sample.extra.get("reference")
        self._start(Job.PREDICT, jobs.predict_job, self.model.predictor, run.sample, axes=run.axes,
                    control=run.control, abort=self._abort, reference=reference, **kwargs,
                    run=run, returned=lambda returned: returned is not None and self.predicted.emit(run, returned))

    def predict_many(self, run: Run, **kwargs) -> None:
        """Predict every image of ``run.parts`` in one worker (one progress across all; Stop ends them all)."""
        self.run = run
        self._start(Job.PREDICT, jobs.predict_many_job, self.model.predictor, [p.sample for p in run.parts],
                    [p.axes for p in run.parts], control=run.control, abort=self._abort, **kwargs, run=run,
                    returned=lambda returned: returned is not None and self.predicted.emit(run, returned))

    def export(self, path: Path, fmt: str, sample=None, sample_axes=None) -> None:
        self._start(Job.EXPORT, jobs.export_job, self.model.checkpoint, fmt, path, sample=sample,
                    sample_axes=sample_axes, abort=self._abort, returned=self.exported.emit)

    def save_store(self, source, path: Path, axes: str, scale=None, on_saved: Callable | None = None) -> None:
        """Copy a zarr result store to ``path`` (OME-Zarr) in the background; ``saved(path, source)`` at the end."""
        self._start(Job.SAVE, jobs.save_store_job, source, path, axes, scale, abort=self._abort,
                    returned=lambda final: final is not None and self.saved.emit(final, source),
                    yielded=lambda ev: self.event.emit(None, ev))

    def embed(self, image, objects, config, *, control: Control, **kwargs) -> None:
        """*Explore objects*: embed the objects (a label image) of ``image``; ``embedded(embedding)`` at the end.

        ``image`` and ``objects`` are the layers' data (copies or lazy arrays: read in the worker);
        ``control`` stops the autoencoder's training early; ``kwargs`` go to the engine's ``embed_objects``.
        """
        self._start(Job.EMBED, jobs.embed_job, image, objects, config, control=control, abort=self._abort,
                    **kwargs, returned=self.embedded.emit, yielded=lambda ev: self.event.emit(None, ev))

    def explain(self, image, objects, model, *, control: Control, **kwargs) -> None:
        """*Explore objects*: Grad-CAM of the classify ``model`` (a file) over the objects; ``explained(result)``."""
        self._start(Job.EXPLAIN, jobs.explain_job, image, objects, model, control=control, abort=self._abort,
                    **kwargs, returned=self.explained.emit, yielded=lambda ev: self.event.emit(None, ev))

    def send(self, message) -> bool:
        """Hand ``message`` to the running training (it arrives between two steps); False when none runs."""
        if not self.training or self.run is None:
            return False
        self.run.inbox.put(message)
        return True

    def stop(self) -> None:
        """Training: finish the step and keep the model so far. Prediction: cancel."""
        if self.run is not None:
            self.run.control.stop()
        worker = self.workers.get(Job.TRAIN)
        if worker is not None and worker.is_paused:
            worker.resume()  # a paused generator only sees the stop when it runs again

    def toggle_pause(self) -> None:
        worker = self.workers.get(Job.TRAIN)
        if worker is None:
            return
        worker.resume() if worker.is_paused else worker.pause()

    def shutdown(self) -> None:
        """The window is closing: end every worker now and never call back into the widget again."""
        if self.closed:
            return
        self.closed = True
        self._abort.set()
        if self.run is not None:
            self.run.control.stop()
        for worker in self.workers.values():
            detach(worker)
        self.workers.clear()
        self._gc.release()
        for signal in (self.event, self.trained, self.predicted, self.failed, self.ended, self.paused,
                       self.exported, self.saved, self.embedded, self.explained, self.changed):
            signal.disconnect()

    # ---------------------------------------------------------------- workers
    def _start(self, job: Job, fn, *args, run: Run | None = None, returned: Callable, paused: bool = False,
               yielded: Callable | None = None, **kwargs) -> None:
        connect = {"returned": self._guard(returned), "errored": self._guard(lambda err: self._on_error(run, err)),
                   "finished": self._guard(lambda: self._on_finished(job, run))}
        if run is not None:
            yielded = lambda ev: self._on_event(run, ev)  # noqa: E731
        if yielded is not None:
            connect["yielded"] = self._guard(yielded)
        if paused:
            connect["paused"] = self._guard(lambda: self.paused.emit(True))
            connect["resumed"] = self._guard(lambda: self.paused.emit(False))
        worker = create_worker(fn, *args, **kwargs, _start_thread=False, _connect=connect)
        self.workers[job] = worker
        if job in RUNS:
            self._gc.hold()
        self.changed.emit()
        worker.start()

    def _guard(self, slot: Callable) -> Callable:
        """A worker slot that does nothing once the session is shut down (a queued signal may still arrive)."""

        def guarded(*args):
            if not self.closed and self._alive is not None and not self._alive():
                self.shutdown()
            if not self.closed:
                slot(*args)

        return guarded

    def _on_event(self, run: Run, ev) -> None:
        self._record(run, ev)  # what the run's events said so far (its fields), then the widget's handlers
        self.event.emit(run, ev)

    def _on_trained(self, run: Run, result) -> None:
        if result is None:  # aborted
            return
        run.trained = True
        self.model = Model.of(result.checkpoint)
        self.trained.emit(run, result)

    def _on_error(self, run: Run | None, err: BaseException) -> None:
        from ..core import BioimgError

        if isinstance(err, BioimgError):
            message = str(err)
        elif isinstance(err, OSError) and err.filename:
            message = f"could not use the file {err.filename}: {err.strerror or err}"
        else:
            message = f"internal error ({type(err).__name__}: {err}); please report it"
        self.failed.emit(run, message)

    def _on_finished(self, job: Job, run: Run | None) -> None:
        self.workers.pop(job, None)
        if job in RUNS and not (RUNS & set(self.workers)):
            self._gc.release()
        if run is not None:
            self.ended.emit(run)
        self.changed.emit()


def _keep(name: str) -> Callable[[Run, Any], None]:
    """A handler that keeps the event in the run's field ``name``."""
    return lambda run, ev: setattr(run, name, ev)
