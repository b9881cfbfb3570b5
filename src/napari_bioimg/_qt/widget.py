"""The napari dock widget: pick layers, train in the background, watch, stop, predict, save.

The composition root: it makes the parts and wires them, nothing else.

- :class:`~.form.TrainForm` — task, layers, model, budget, device, advanced settings -> a TrainConfig;
- :class:`~.session.Session` — the current model, the current :class:`~.session.Run`, every worker;
- :class:`~.results.ResultLayers` — result layers (placeholder, previews, final and lazy results);
- :class:`~.files.FileActions` — save / load / export the model, save a big result;
- :class:`~.live.LivePanel` — *Live* training while the user annotates, *Where next?*;
- :mod:`.inputs` — a Train / Predict click -> a Run; :mod:`.plots`, :mod:`.progress`, :mod:`.classes` — display.

All computation lives in :mod:`napari_bioimg.core`; the widget applies its events on the main thread.
"""

from __future__ import annotations

import threading

import napari
import numpy as np
from magicgui.widgets import Container, PushButton
from napari.utils.notifications import show_info, show_warning
from qtpy import sip
from qtpy.QtCore import QEvent, Qt
from qtpy.QtWidgets import QDockWidget, QFrame, QScrollArea, QVBoxLayout, QWidget

from . import classes as C
from . import inputs
from . import layers as L
from . import progress as P
from .datalist import TrainingData
from .files import FileActions
from .form import TrainForm
from .guidance import next_step
from .jobs import CopyProgress, ImageResult
from .lifetime import CloseWatch
from .live import LivePanel
from .outcome import show_prediction
from .plots import LossPlot
from .results import ResultLayers
from .session import Session
from .startfrom import StartFrom


class BioimgWidget(QWidget):
    """Train a U-Net (and other registered models) on the current image and annotations."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.form = TrainForm(viewer)
        self.data = TrainingData(viewer, self.form)
        self.session = Session(alive=lambda: not sip.isdeleted(self.progress))
        self.results = ResultLayers(viewer)
        self.status = P.StatusLine()
        self.files = FileActions(self.session, self.form, self.results, self.status, viewer, parent=self)
        self.progress = P.DockProgress()
        self.plot = LossPlot()
        self.legend = C.ClassLegend()
        self.confusion = C.ConfusionPlot()
        self._confirmed = None  # (annotation layer, task) the user chose to train on despite a warning

        self.train_btn = PushButton(text="Train", tooltip="Train a new model")
        self.continue_btn = PushButton(text="Continue", enabled=False,
                                       tooltip="Continue training the current model on the current annotations "
                                               "(e.g. after correcting its prediction); the loss curve continues")
        self.pause_btn = PushButton(text="Pause", enabled=False,
                                    tooltip="Pause / resume training; the time budget does not run while paused")
        self.stop_btn = PushButton(text="Stop", enabled=False, tooltip="Stop: training keeps the model so far; "
                                                                       "a prediction is cancelled")
        self.predict_btn = PushButton(text="Predict", enabled=False)
        self.several_btn = PushButton(text="Predict several", enabled=False,
                                      tooltip="Predict each image layer selected in the layer list (Ctrl/Shift-"
                                              "click), or each image of the Training data list, into its own "
                                              "result layer")
        self.buttons = Container(widgets=[self.train_btn, self.continue_btn, self.pause_btn, self.stop_btn,
                                          self.predict_btn], layout="horizontal", labels=False)
        self.live = LivePanel(viewer, self.session, self.results, self.status)
        self.start_from = StartFrom(self.form, self.files, self.session, self.status)
        self._layout()
        self._wire()
        self._close_watch = CloseWatch(self, self._on_close)
        self._update_buttons()
        self.status.value = self.guidance()
        # torch's one-time start-up (importing its compiler stack, first kernels) now, off the GUI thread,
        # rather than in the first seconds of training where it would freeze the viewer
        from ..core.runtime.fast import warm_up

        threading.Thread(target=warm_up, name="napari-bioimg-warm-up", daemon=True).start()
        self.progress.warm_up()

    # ---------------------------------------------------------------- composition
    def _layout(self) -> None:
        """Everything in a scroll area: the dock never needs more height than the screen has."""
        content = QWidget()
        box = QVBoxLayout(content)
        box.setContentsMargins(6, 4, 6, 4)
        for row in (self.form.main, self.buttons, self.live.row, self.files.row):
            row.native.layout().setContentsMargins(0, 0, 0, 0)
        self.start_from.row.native.layout().setContentsMargins(0, 0, 0, 0)
        for part in (self.form.main.native, self.start_from.row.native, self.form.collapsible, self.data, self.buttons.native,
                     self.several_btn.native, self.live.row.native, self.live.suggestions.native,
                     self.files.row.native,
                     self.files.save_result_btn.native, self.progress, self.status.label.native, self.plot,
                     self.legend, self.confusion):
            box.addWidget(part)
        box.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidget(content)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        bar = self.scroll.verticalScrollBar().sizeHint().width()
        self.scroll.setMinimumWidth(content.minimumSizeHint().width() + bar)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll)

    def _wire(self) -> None:
        self.train_btn.changed.connect(lambda *_: self.start_training())
        self.continue_btn.changed.connect(lambda *_: self.start_training(fine_tune=True))
        self.pause_btn.changed.connect(lambda *_: self.session.toggle_pause())
        self.stop_btn.changed.connect(lambda *_: self.stop())
        self.predict_btn.changed.connect(lambda *_: self.start_prediction())
        self.several_btn.changed.connect(lambda *_: self.start_several())
        self.form.changed.connect(self._on_form_changed)
        self.data.changed.connect(self._on_form_changed)
        s = self.session
        s.event.connect(self._on_event)
        s.trained.connect(self._on_trained)
        s.predicted.connect(self._on_predicted)
        s.failed.connect(lambda run, message: self.status.error(message))
        s.ended.connect(self._on_ended)
        s.paused.connect(self._on_paused)
        s.changed.connect(self._update_buttons)
        layers = self.viewer.layers.events
        for ev in (layers.inserted, layers.removed, layers.moved):
            ev.connect(self._on_layers_changed)
        self._watched: set = set()
        self._follow_renames()

    def _on_layers_changed(self, event=None) -> None:
        self.form.refresh_layers()
        self.data.refresh()
        self._follow_renames()
        self.files.update()

    def _follow_renames(self) -> None:
        for layer in self.viewer.layers:
            if L.layer_key(layer) not in self._watched:
                self._watched.add(L.layer_key(layer))
                layer.events.name.connect(self.form.refresh_layers)
                layer.events.name.connect(self.data.refresh)

    # ---------------------------------------------------------------- what the user should do next
    def guidance(self) -> str:
        """The next step, from what is picked (never asks for what is already there)."""
        if self.data.pairs:
            return f"Ready: Train on the {len(self.data.pairs)} pair(s) of the Training data list."
        return next_step(self.form, self.session.model)

    def _on_form_changed(self) -> None:
        self._confirmed = None
        self.train_btn.text = "Train"
        if not self.form.task_info.direct_model:  # class displays belong to classification
            self.confusion.show_report(None)
            self.legend.show_entries(None)
        if not self.session.busy:
            self.status.value = self.guidance()
        self._update_buttons()

    def _update_buttons(self) -> None:
        s = self.session
        busy, training = s.busy, s.training
        self.train_btn.enabled = not busy
        self.continue_btn.enabled = not busy and s.trainable
        self.pause_btn.enabled = training
        if not training:
            self.pause_btn.text = "Pause"
        self.stop_btn.enabled = bool({"train", "predict"} & set(s.workers))
        image = self.form.image.value
        self.predict_btn.enabled = not busy and s.model is not None and image is not None
        self.several_btn.enabled = not busy and s.model is not None
        self.predict_btn.tooltip = (
            "Train a model or Load one first" if s.model is None else
            "Busy: wait for the current run, or Stop it" if busy else
            "Pick an image to predict" if image is None else
            f"Predict '{image.name}' with the current model: {s.model.card.summary()}")
        self.files.update()

    # ---------------------------------------------------------------- actions
    @property
    def busy(self) -> bool:
        return self.session.busy

    def stop(self) -> None:
        if self.session.busy:
            self.session.stop()
            self.status.value = "Stopping…"

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
        self.train_btn.text = "Train"
        if not fine_tune:
            self.plot.reset()
        self.legend.show_entries(None)
        self.progress.begin(f"Training {config.model}")
        how = "Continuing" if fine_tune else "Starting"
        on = run.sample.image_name if len(run.samples) == 1 else f"{len(run.samples)} images"
        self.status.value = f"{how} {config.model} ({self.form.task_label}) on {on}…"
        run.live = self.live.wants(run.task, fine_tune) and len(run.samples) == 1
        self.session.train(run, config)
        if run.live:
            self.live.begin(run, self.form)

    def _ask_first(self, run) -> bool:
        """Scribbles task on an instance-looking mask: warn, and train only when Train is pressed again."""
        layer = self.form.annotations.value
        stats = self.form.instance_looking(layer) if run.task == "semantic" else None
        key = (L.layer_key(layer), run.task) if layer is not None else None
        if stats is None or self._confirmed == key:
            return False
        self._confirmed = key
        n, covered = stats
        self.status.warn(f"'{layer.name}' looks like instance masks ({n} ids over {covered:.0%} of the image), "
                         f"not scribbles: scribbles training would learn {n} 'classes' of single objects. Paint a "
                         "few strokes per class in a new Labels layer (1 = background, 2 = cells, …), or press "
                         f"Train again to train on '{layer.name}' anyway.")
        self.train_btn.text = "Train anyway"
        return True

    def start_prediction(self, after=None) -> None:
        """Predict the picked image (or, ``after`` a training run, its image) with the current model."""
        from ..core import BioimgError

        if self.session.busy or self.session.model is None:
            return
        try:
            run, options = inputs.prediction_run(self.form, self.viewer, self.session.model, after)
        except BioimgError as err:
            self.status.error(str(err))
            return
        if after is not None:
            run.placeholder = after.placeholder  # the final result goes into the layer the previews used
            run.follows = after
        options.update(self.start_from.options())  # the object diameter
        self.progress.begin("Predicting")
        self.session.predict(run, **options)

    def start_several(self, layers=None) -> None:
        """Predict several image layers (the selected ones, or the listed ones), each into its own result layer."""
        from ..core import BioimgError

        if self.session.busy or self.session.model is None:
            return
        try:
            layers = layers or inputs.several_images(self.viewer, self.data)
            run, options = inputs.prediction_runs(self.form, self.viewer, self.session.model, layers)
        except BioimgError as err:
            self.status.error(str(err))
            return
        self.progress.begin(f"Predicting {len(run.parts)} images")
        self.session.predict_many(run, **options)

    # ---------------------------------------------------------------- what the session reports
    def _on_event(self, run, ev) -> None:
        from ..core import events as E

        if self.live.on_event(run, ev):
            return
        if isinstance(ev, E.StepDone):
            self.plot.add_loss(ev.step, ev.loss)
            self.progress.set_fraction(ev.fraction)
            self._training_status(run)
        elif isinstance(ev, E.ValidationDone):
            name, value = next(iter(ev.metrics.items()), ("score", ev.score))
            size, _ = P.validation_note(run)
            self.plot.add_validation(ev.step, value, f"{name} ({size})" if size else name)
            self._training_status(run)
        elif isinstance(ev, E.PreviewReady):
            self.results.preview(run, ev)
        elif isinstance(ev, E.TrainingStarted):
            if run.preview_index is not None:  # the result layer now (napari takes ~0.1 s), not mid-training
                self.results.add_placeholder(run)
            size, caveat = P.validation_note(run)
            self.status.value = P.line(f"Training on {ev.device}: {ev.n_parameters:,} parameters",
                                       P.part("patch", "×".join(map(str, ev.patch_size))),
                                       f"validation {size}" if size else "")
        elif isinstance(ev, E.PredictProgress):
            self.progress.set_fraction(ev.done / max(ev.total, 1))
            done = (f"image {min(len(run.parts), 1 + ev.done * len(run.parts) // max(ev.total, 1))} of "
                    f"{len(run.parts)}" if run.parts else P.part(f"{ev.done}/{ev.total}", ev.stage))
            self.status.value = P.line(P.part("Predicting:", done), P.part("ETA", P.fmt_time(run.eta())))
        elif isinstance(ev, ImageResult):
            part = run.parts[ev.index]
            show = self.results.show if isinstance(ev.result, np.ndarray) else self.results.show_lazy
            show(part, ev.result)
        elif isinstance(ev, CopyProgress):
            self.status.value = P.line(P.part("Saving:", f"{ev.done}/{ev.total}", "chunks"))
        elif isinstance(ev, E.Notice):
            (show_warning if ev.level == "warning" else show_info)(f"napari-bioimg: {ev.message}")

    def _training_status(self, run) -> None:
        ev, val = run.last, run.val
        if ev is None:
            return
        parts = [P.part(k.replace("_", " "), f"{v:.3g}") for k, v in list(val.metrics.items())[:1]] if val else []
        size, caveat = P.validation_note(run)
        if parts and size:
            parts[-1] += P.NBSP + P.part(f"({size}{', few' if caveat else ''})")
        parts += [P.part("step", ev.step), P.part("loss", f"{ev.loss:.3g}"),
                  P.part(f"{ev.steps_per_second:.1f}", "it/s"), P.part("ETA", P.fmt_time(ev.eta))]
        self.status.value = P.line(*parts)

    def _on_paused(self, paused: bool) -> None:
        self.pause_btn.text = "Resume" if paused else "Pause"
        run = self.session.run
        if paused:
            at = f" at step {run.last.step}" if run is not None and run.last is not None else ""
            self.status.value = f"Paused{at}; the time budget is on hold. Resume or Stop."
        elif run is not None:
            self._training_status(run)

    def _on_trained(self, run, result) -> None:
        metrics = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in result.metrics.items() if k != "best_score")
        how = "stopped" if result.stopped_early else "finished"
        size, caveat = P.validation_note(run)
        text = f"Training {how}: {result.steps} steps in {result.seconds:.0f} s. {metrics}"
        if metrics and size:
            text += f" (validated {size})"
        run.summary = text + (f". Caution: {caveat}." if caveat and metrics else ".")
        self.status.value = run.summary
        self.confusion.show_report(self.session.model.card.validation_report)

    def _on_predicted(self, run, returned) -> None:
        self.status.prefix = run.follows.summary if run.follows is not None else ""
        show_prediction(run, returned, self.results, self.legend, self.status)

    def _on_ended(self, run) -> None:
        self.live.end()
        self.status.prefix = ""
        self.progress.end()
        self.results.finish(run)
        for part in run.parts:
            self.results.finish(part)
        listed = [layer for s in run.samples for layer in [L.find_layer(self.viewer, s.image_key)] if layer] \
            if len(run.samples) > 1 else []
        if run.job == "train" and run.trained and listed:
            self._update_buttons()
            self.start_several(listed)  # every listed image with the final model, each into its own layer
        elif run.job == "train" and run.trained and len(run.samples) == 1 \
                and L.find_layer(self.viewer, run.sample.image_key) is not None:
            self._update_buttons()
            self.start_prediction(after=run)  # the whole image with the final model (into the placeholder)
        else:
            self.results.drop_placeholder(run)

    # ---------------------------------------------------------------- window
    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        self._fit_dock_title()

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ParentChange:
            self._fit_dock_title()
        return super().event(event)

    def _fit_dock_title(self) -> None:
        """Wide enough for napari's dock title ("Deep learning (train / predict) (napari-bioimg)")."""
        dock = self.parent()
        while dock is not None and not isinstance(dock, QDockWidget):
            dock = dock.parent()
        title = getattr(dock.titleBarWidget(), "title", None) if dock is not None else None
        if title is not None:
            needed = title.fontMetrics().horizontalAdvance(title.text()) + 90  # + the bar's three buttons
            self.setMinimumWidth(min(max(needed, self.scroll.minimumWidth()), 480))

    def _on_close(self, window_closed: bool) -> None:
        """The window (or this widget) closes: workers end now, temporary results go, no callback comes back."""
        self.session.shutdown()
        self.live.close()
        self.progress.close_activity()
        self.results.close(window_closed)
        layers = self.viewer.layers.events
        for ev in (layers.inserted, layers.removed, layers.moved):
            ev.disconnect(self._on_layers_changed)
        for layer in self.viewer.layers:
            layer.events.name.disconnect(self.form.refresh_layers)
            layer.events.name.disconnect(self.data.refresh)
