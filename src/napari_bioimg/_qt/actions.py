"""What the dock widget's run buttons start, and what follows when a run ends.

:class:`RunActions` turns a Train / Continue / Predict / Predict several click into a
:class:`~.session.Run` (:mod:`.inputs`) and hands it to the :class:`~.session.Session`; when the
session reports the run's end it applies the outcome and the post-training chain: a finished
training predicts its image (or every image of the Training data list) with the final model.
Main thread only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from . import inputs
from . import layers as L
from . import prose as T
from .outcome import show_prediction
from .session import Job

if TYPE_CHECKING:
    from magicgui.widgets import PushButton

    from .classes import ClassLegend, ConfusionPlot
    from .datalist import TrainingData
    from .display import RunDisplay
    from .form import TrainForm
    from .session import Run, Session
    from .startfrom import StartFrom


class RunActions:
    """Starts runs from the form and finishes them (the widget wires its buttons and the session's signals here)."""

    def __init__(self, viewer, form: TrainForm, data: TrainingData, session: Session, display: RunDisplay,
                 legend: ClassLegend, confusion: ConfusionPlot, start_from: StartFrom, train_btn: PushButton,
                 update_buttons: Callable[[], None]):
        self.viewer, self.form, self.data, self.session = viewer, form, data, session
        self.display, self.legend, self.confusion = display, legend, confusion
        self.results, self.status, self.progress = display.results, display.status, display.progress
        self.start_from, self.train_btn, self.update_buttons = start_from, train_btn, update_buttons
        self.confirmed = None
        """(annotation layer, task) the user chose to train on despite a warning."""
        self.failure = ""
        """The last run's error: it stays on the status line until the next run."""

    # ---------------------------------------------------------------- starting
    def stop(self) -> None:
        if self.session.busy:
            self.session.stop()
            self.status.value = T.STOPPING

    def start_training(self, *, fine_tune: bool = False) -> None:
        """Train (or Continue: fine-tune the current model on the current annotations)."""
        from ..core import BioimgError

        fine_tune = fine_tune or self.start_from.fine_tune()  # a built-in or model file picked to start from
        if self.session.busy or (fine_tune and not self.session.trainable):
            return
        try:
            run, config = inputs.training_run(self.form, self.viewer, self.session.model, fine_tune, self.data)
        except BioimgError as err:
            self.status.error(str(err))
            return
        if not fine_tune and self._ask_first(run):
            return
        self.failure = ""
        self.train_btn.text = "Train"
        if not fine_tune:
            self.display.plot.reset()
        self.legend.show_entries(None)
        self.progress.begin(f"Training {config.model}")
        self.status.value = T.starting(run, config.model, self.form.task_label)
        live = self.display.live
        run.live = live.wants(run.task, fine_tune) and len(run.samples) == 1
        if run.preview_index is not None:  # the result layer now: napari takes 0.1-0.3 s, not mid-training
            self.results.add_placeholder(run)
        self.session.train(run, config)
        if run.live:
            live.begin(run, self.form)

    def _ask_first(self, run: Run) -> bool:
        """Another image's annotations, or a scribbles task on instance masks: warn; train on a second press."""
        from .guidance import doubt

        found = doubt(self.form, self.viewer, run, self.data)
        if found is None or self.confirmed == found[0]:
            return False
        self.confirmed = found[0]
        self.train_btn.text = "Train anyway"
        self.status.warn(found[1])
        return True

    def start_prediction(self, after: Run | None = None) -> None:
        """Predict the picked image (or, ``after`` a training run, its image) with the current model."""
        from ..core import BioimgError

        if self.session.busy or self.session.model is None:
            return
        try:
            run, options = inputs.prediction_run(self.form, self.viewer, self.session.model, after)
        except BioimgError as err:
            self.status.error(str(err))
            return
        self.failure = ""
        if after is not None:
            run.placeholder = after.placeholder  # the final result goes into the layer the previews used
            run.follows = after
        options.update(self.start_from.options())  # the object diameter
        self.progress.begin("Predicting")
        self.session.predict(run, **options)

    def start_several(self, layers=None, after: Run | None = None) -> None:
        """Predict several image layers (the selected ones, or the listed ones), each into its own result layer;
        ``after`` the training run on the Training data list (its summary stays on the status line)."""
        from ..core import BioimgError

        if self.session.busy or self.session.model is None:
            return
        try:
            layers = layers or inputs.several_images(self.viewer, self.data)
            run, options = inputs.prediction_runs(self.form, self.viewer, self.session.model, layers)
        except BioimgError as err:
            self.status.error(str(err))
            return
        run.follows = after
        self.progress.begin(f"Predicting {len(run.parts)} images")
        self.session.predict_many(run, **options)

    # ---------------------------------------------------------------- what the session reports
    def trained(self, run: Run, result) -> None:
        run.summary = T.trained_summary(run, result)
        self.status.value = run.summary
        self.confusion.show_report(self.session.model.card.validation_report)

    def failed(self, run: Run | None, message: str) -> None:
        self.failure = T.failed(run, message)
        self.status.error(self.failure)

    def predicted(self, run: Run, returned) -> None:
        self.status.prefix = run.follows.summary if run.follows is not None else ""
        show_prediction(run, returned, self.results, self.legend, self.status)

    def ended(self, run: Run) -> None:
        """A run's worker is done (whatever the outcome): clean up, and after a training, predict with its model."""
        self.display.live.end()
        self.status.prefix = ""
        self.progress.end()
        self.results.finish(run)
        for part in run.parts:
            self.results.finish(part)
        trained = run.job is Job.TRAIN and run.trained
        listed = [layer for s in run.samples for layer in [L.find_layer(self.viewer, s.image_key)] if layer] \
            if len(run.samples) > 1 else []
        if trained and listed:
            self.update_buttons()
            self.start_several(listed, after=run)  # every listed image with the final model, each into its own layer
        elif trained and len(run.samples) == 1 and L.find_layer(self.viewer, run.sample.image_key) is not None:
            self.update_buttons()
            self.start_prediction(after=run)  # the whole image with the final model (into the placeholder)
        elif trained and len(run.samples) == 1:
            self.results.drop_placeholder(run)
            layer = self.results.mark_preview(run)  # not a result: named as the preview it is
            self.status.warn(T.image_closed(run, layer))
        else:
            self.results.drop_placeholder(run)
            if run.job is Job.TRAIN and not run.trained:  # failed: its layer only ever held previews
                self.results.drop_previews(run)
