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

import napari
import numpy as np
from magicgui.widgets import Container, PushButton
from napari.utils.notifications import show_info, show_warning
from qtpy import sip
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

from . import classes as C
from . import inputs
from . import layers as L
from . import progress as P
from .command import CommandExport
from .datalist import TrainingData
from .dock import EngineDock, fit_dock_title
from .files import FileActions
from .form import TrainForm
from .guidance import model_words, next_step
from .jobs import CopyProgress, ImageResult
from .lifetime import CloseWatch
from .live import LivePanel
from .marking import ClassMarker
from .outcome import show_prediction
from .plots import LossPlot
from .results import ResultLayers
from .session import Session
from .startfrom import StartFrom


class BioimgWidget(EngineDock):
    """Train a U-Net (and other registered models) on the current image and annotations."""

    PARTS = ("form", "data", "marker", "session", "results", "status", "files", "progress", "plot", "legend", "confusion",
             "train_btn", "continue_btn", "pause_btn", "stop_btn", "predict_btn", "several_btn", "buttons", "live",
             "start_from", "scroll")

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self._close_watch = CloseWatch(self, self._on_close)
        self.start()

    def build(self):
        """Make the parts and wire them (GUI thread, once the engine is imported), a piece per ``yield``."""
        viewer = self.viewer
        self.form = TrainForm(viewer)
        yield
        self.data = TrainingData(viewer, self.form)
        self.marker = ClassMarker(viewer)
        self.session = Session(alive=lambda: not sip.isdeleted(self.progress))
        self.results = ResultLayers(viewer)
        self.status = P.StatusLine()
        self.files = FileActions(self.session, self.form, self.results, self.status, viewer, parent=self)
        self.command = CommandExport(self.form, self.data, self.status, parent=self)  # in the Training data section
        self.progress = P.DockProgress()
        self.plot = LossPlot()
        self.legend = C.ClassLegend()
        self.confusion = C.ConfusionPlot()
        self._confirmed = None  # (annotation layer, task) the user chose to train on despite a warning
        self._failure = ""  # the last run's error: it stays on the status line until the next run

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
        yield
        yield from self._layout()
        self._wire()
        self._on_form_changed()
        yield
        self.progress.warm_up()

    # ---------------------------------------------------------------- composition
    def _layout(self):
        """Everything in a scroll area: the dock never needs more height than the screen has.

        The scroll area is shown first; the parts are added one per turn of the event loop
        (napari's style sheet polishes each as it is shown, tens of milliseconds for the larger ones).
        """
        content = QWidget()
        box = QVBoxLayout(content)
        box.setContentsMargins(6, 4, 6, 4)
        for row in (self.form.main, self.marker.row, self.buttons, self.live.row, self.files.row):
            row.native.layout().setContentsMargins(0, 0, 0, 0)
        self.start_from.row.native.layout().setContentsMargins(0, 0, 0, 0)
        self.scroll = QScrollArea()
        self.scroll.setWidget(content)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.show_content(self.scroll)
        for part in (self.form.main.native, self.start_from.row.native, self.marker.row.native, self.form.collapsible,
                     self.data, self.buttons.native,
                     self.several_btn.native, self.live.row.native, self.live.suggestions.native,
                     self.files.row.native,
                     self.files.save_result_btn.native, self.progress, self.status.label.native, self.plot,
                     self.legend, self.confusion):
            box.addWidget(part)
            yield
        box.addStretch(1)
        bar = self.scroll.verticalScrollBar().sizeHint().width()
        self.scroll.setMinimumWidth(content.minimumSizeHint().width() + bar)
        fit_dock_title(self, self.scroll.minimumWidth())

    def _wire(self) -> None:
        self.train_btn.changed.connect(lambda *_: self.start_training())
        self.continue_btn.changed.connect(lambda *_: self.start_training(fine_tune=True))
        self.pause_btn.changed.connect(lambda *_: self.session.toggle_pause())
        self.stop_btn.changed.connect(lambda *_: self.stop())
        self.predict_btn.changed.connect(lambda *_: self.start_prediction())
        self.several_btn.changed.connect(lambda *_: self.start_several())
        self.form.changed.connect(self._on_form_changed)
        self.form.refused.connect(self.status.info)  # a typed value out of range: said, not clamped silently
        self.data.changed.connect(self._on_form_changed)
        self.marker.changed.connect(self._on_form_changed)
        self.data.said.connect(self._on_data_said)
        s = self.session
        s.event.connect(self._on_event)
        s.trained.connect(self._on_trained)
        s.predicted.connect(self._on_predicted)
        s.failed.connect(self._on_failed)
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
        self.marker.row.visible = self.form.uses("classes")
        self._confirmed = None
        self.train_btn.text = "Train"
        if not self.form.task_info.direct_model:  # class displays belong to classification
            self.confusion.show_report(None)
            self.legend.show_entries(None)
        if not self.session.busy:
            self.status.value = self._after_failure(self.guidance())
        self._update_buttons()

    def _on_data_said(self, text: str) -> None:
        """What a Training data button did, and the next step."""
        if text.startswith(("Not added", "Error")):
            self.status.warn(text)
        elif not self.session.busy:
            self.status.info(f"{text} {self.guidance()}")

    def _after_failure(self, text: str) -> str:
        """``text`` under the last run's error (which stays until the next run starts)."""
        return f"Error: {self._failure}\n{text}" if self._failure else text

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
            f"Predict '{image.name}' with the current model: {model_words(s.model.card)}")
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
        self._failure = ""
        self.train_btn.text = "Train"
        if not fine_tune:
            self.plot.reset()
        self.legend.show_entries(None)
        self.progress.begin(f"Training {config.model}")
        how = "Continuing" if fine_tune else "Starting"
        on = run.sample.image_name if len(run.samples) == 1 else f"{len(run.samples)} images"
        self.status.value = f"{how} {config.model} ({self.form.task_label}) on {on}…"
        run.live = self.live.wants(run.task, fine_tune) and len(run.samples) == 1
        if run.preview_index is not None:  # the result layer now: napari takes 0.1-0.3 s, not mid-training
            self.results.add_placeholder(run)
        self.session.train(run, config)
        if run.live:
            self.live.begin(run, self.form)

    def _ask_first(self, run) -> bool:
        """Another image's annotations, or a scribbles task on instance masks: warn; train on a second press."""
        from .guidance import doubt

        found = doubt(self.form, self.viewer, run, self.data)
        if found is None or self._confirmed == found[0]:
            return False
        self._confirmed = found[0]
        self.train_btn.text = "Train anyway"
        self.status.warn(found[1])
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
        self._failure = ""
        if after is not None:
            run.placeholder = after.placeholder  # the final result goes into the layer the previews used
            run.follows = after
        options.update(self.start_from.options())  # the object diameter
        self.progress.begin("Predicting")
        self.session.predict(run, **options)

    def start_several(self, layers=None, after=None) -> None:
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
    def _on_event(self, run, ev) -> None:
        from ..core import events as E

        if self.live.on_event(run, ev):
            return
        if isinstance(ev, E.StepDone):
            self.plot.add_loss(ev.step, ev.loss)
            if run.live:  # no budget: the bar shows the time trained
                self.progress.set_clock(ev.elapsed)
            else:
                self.progress.set_fraction(ev.fraction)
            self._training_status(run)
        elif isinstance(ev, E.ValidationDone):
            name, value = next(iter(ev.metrics.items()), ("score", ev.score))
            size, _ = P.validation_note(run)
            self.plot.add_validation(ev.step, value, f"{name} ({size})" if size else name)
            self._training_status(run)
        elif isinstance(ev, E.PreviewReady):
            run.preview = ev
            self.results.preview(run, ev)
        elif isinstance(ev, E.TrainingStarted):
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
        if run.last is not None:
            self.status.value = P.training_line(run, self.live.clock(run.last) if run.live else None)

    def _on_paused(self, paused: bool) -> None:
        self.pause_btn.text = "Resume" if paused else "Pause"
        run = self.session.run
        if paused:
            at = f" at step {run.last.step}" if run is not None and run.last is not None else ""
            self.status.value = f"Paused{at}; the time budget is on hold. Resume or Stop."
        elif run is not None:
            self._training_status(run)

    def _on_trained(self, run, result) -> None:
        run.summary = P.trained_summary(run, result)
        self.status.value = run.summary
        self.confusion.show_report(self.session.model.card.validation_report)

    def _on_failed(self, run, message: str) -> None:
        what = {"train": "training", "predict": "prediction"}.get(getattr(run, "job", None), "the last action")
        self._failure = f"{what} failed: {message}. Your layers are unchanged."
        self.status.error(self._failure)

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
            self.start_several(listed, after=run)  # every listed image with the final model, each into its own layer
        elif run.job == "train" and run.trained and len(run.samples) == 1 \
                and L.find_layer(self.viewer, run.sample.image_key) is not None:
            self._update_buttons()
            self.start_prediction(after=run)  # the whole image with the final model (into the placeholder)
        elif run.job == "train" and run.trained and len(run.samples) == 1:
            self.results.drop_placeholder(run)
            layer = self.results.mark_preview(run)  # not a result: named as the preview it is
            kept = f" '{layer.name}' holds only an early preview." if layer is not None else ""
            self.status.warn(f"{run.summary}\nThe image '{run.sample.image_name}' was closed during training, so "
                             f"nothing was predicted.{kept} The model is kept: Save it, or pick an image and "
                             "Predict.")
        else:
            self.results.drop_placeholder(run)
            if run.job == "train" and not run.trained:  # failed: its layer only ever held previews
                self.results.drop_previews(run)

    # ---------------------------------------------------------------- window
    def _on_close(self, window_closed: bool) -> None:
        """The window (or this widget) closes: workers end now, temporary results go, no callback comes back."""
        if not self.ready:  # closed while the engine was loading: nothing to end
            self.cancel()
            return
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
