"""What a run's events show in the dock widget: the loss plot, the progress bar, the status line, result layers.

:class:`RunDisplay` holds the widget's handler table (:attr:`RunDisplay.handlers`): one row per event
type the session re-emits, the engine's (:mod:`napari_bioimg.core.events`) and the workers' own
(:mod:`.jobs`), live training's rows included. Main thread only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..core import events as E
from . import notices
from . import prose as T
from .dispatch import Handlers, ignore
from .jobs import CopyProgress, ImageResult, Received

if TYPE_CHECKING:
    from .live import LivePanel
    from .plots import LossPlot
    from .progress import DockProgress, StatusLine
    from .results import ResultLayers
    from .session import Run


class RunDisplay:
    """Applies a run's events to the widget's displays (each handler takes ``(run, ev)``)."""

    def __init__(self, plot: LossPlot, progress: DockProgress, status: StatusLine, results: ResultLayers,
                 live: LivePanel):
        self.plot, self.progress, self.status, self.results, self.live = plot, progress, status, results, live
        self.handlers = Handlers({
            E.TrainingStarted: self.started,
            E.StepDone: self.step,
            E.ValidationDone: self.validated,
            E.PreviewReady: self.preview,
            E.PredictProgress: self.predicting,
            E.Notice: lambda run, ev: notices.engine_notice(ev),  # a pop-up; the status line keeps the run's state
            ImageResult: self.image_done,
            CopyProgress: self.saving,
            Received: ignore,  # a message reached the training's worker: nothing to show
            **live.handlers(),  # LivePreview, LiveWaiting, LivePaused and the heartbeat while waiting
        })
        """Event type -> handler: what the widget does with each event (:mod:`.dispatch`)."""

    def started(self, run: Run, ev: E.TrainingStarted) -> None:
        self.status.value = T.training_started(run, ev)

    def step(self, run: Run, ev: E.StepDone) -> None:
        self.plot.add_loss(ev.step, ev.loss)
        if run.live:  # no budget: the bar shows the time trained
            self.progress.set_clock(ev.elapsed)
        else:
            self.progress.set_fraction(ev.fraction)
        self.training_status(run)

    def validated(self, run: Run, ev: E.ValidationDone) -> None:
        value = next(iter(ev.metrics.values()), ev.score)
        self.plot.add_validation(ev.step, value, T.validation_label(run, ev))
        self.training_status(run)

    def preview(self, run: Run, ev: E.PreviewReady) -> None:
        run.preview = ev
        self.results.preview(run, ev)

    def predicting(self, run: Run, ev: E.PredictProgress) -> None:
        self.progress.set_fraction(ev.done / max(ev.total, 1))
        self.status.value = T.predicting(run, ev)

    def image_done(self, run: Run, ev: ImageResult) -> None:
        part = run.parts[ev.index]
        show = self.results.show if isinstance(ev.result, np.ndarray) else self.results.show_lazy
        show(part, ev.result)

    def saving(self, run: Run | None, ev: CopyProgress) -> None:
        self.status.value = T.saving(ev)

    def training_status(self, run: Run) -> None:
        if run.last is not None:
            self.status.value = T.training_line(run, self.live.clock(run.last) if run.live else None)

    def paused(self, run: Run | None, paused: bool) -> None:
        """The training paused (or resumed): say where it stands."""
        if paused:
            self.status.value = T.paused(run)
        elif run is not None:
            self.training_status(run)
