"""The napari dock widget: pick layers, train in the background, watch, stop, predict, save.

The composition root: it makes the parts and wires them, nothing else.

- :class:`~.form.TrainForm` — task, layers, model, budget, device, advanced settings -> a TrainConfig;
- :class:`~.session.Session` — the current model, the current :class:`~.session.Run`, every worker;
- :class:`~.results.ResultLayers` — result layers (placeholder, previews, final and lazy results);
- :class:`~.files.FileActions` — save / load / export the model, save a big result;
- :class:`~.live.LivePanel` — *Live* training while the user annotates, *Where next?*;
- :class:`~.actions.RunActions` — a Train / Predict click -> a Run (:mod:`.inputs`) -> the session; what follows
  a run's end (a finished training predicts its image);
- :class:`~.display.RunDisplay` — the handler table: each event type -> what it shows (:mod:`.plots`,
  :mod:`.progress`, :mod:`.classes`); its words come from :mod:`.prose`, its pop-ups from :mod:`.notices`.

All computation lives in :mod:`napari_bioimg.core`; the widget applies its events on the main thread.
"""

from __future__ import annotations

import napari
from magicgui.widgets import Container, PushButton
from qtpy import sip
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

from . import classes as C
from . import layers as L
from . import notices
from . import progress as P
from . import prose as T
from .actions import RunActions
from .command import CommandExport
from .datalist import TrainingData
from .display import RunDisplay
from .dock import EngineDock, fit_dock_title
from .files import FileActions
from .form import TrainForm
from .guidance import next_step
from .lifetime import CloseWatch
from .live import LivePanel
from .marking import ClassMarker
from .plots import LossPlot
from .results import ResultLayers
from .session import RUNS, Session
from .startfrom import StartFrom


class BioimgWidget(EngineDock):
    """Train a U-Net (and other registered models) on the current image and annotations."""

    PARTS = ("form", "data", "marker", "session", "results", "status", "files", "command", "progress", "plot", "legend",
             "confusion", "train_btn", "continue_btn", "pause_btn", "stop_btn", "predict_btn", "several_btn", "buttons",
             "live", "start_from", "display", "actions", "scroll")

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self._close_watch = CloseWatch(self, self._on_close)
        self.start()

    def build(self):
        """Make the parts and wire them (GUI thread, once the engine is imported), then show them a piece per
        ``yield``: a part that exists is wired, whatever the layout's progress."""
        viewer = self.viewer
        self.form = TrainForm(viewer)
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
        self.display = RunDisplay(self.plot, self.progress, self.status, self.results, self.live)
        self.actions = RunActions(viewer, self.form, self.data, self.session, self.display, self.legend,
                                  self.confusion, self.start_from, self.train_btn, self._update_buttons)
        self._wire()
        self._on_form_changed()
        yield from self._layout()
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
        self.show_content(self.scroll)  # "Loading…" gives way, napari's dock title fits
        yield
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
        a = self.actions
        self.train_btn.changed.connect(lambda *_: a.start_training())
        self.continue_btn.changed.connect(lambda *_: a.start_training(fine_tune=True))
        self.pause_btn.changed.connect(lambda *_: self.session.toggle_pause())
        self.stop_btn.changed.connect(lambda *_: a.stop())
        self.predict_btn.changed.connect(lambda *_: a.start_prediction())
        self.several_btn.changed.connect(lambda *_: a.start_several())
        self.form.changed.connect(self._on_form_changed)
        self.form.refused.connect(self.status.info)  # a typed value out of range: said, not clamped silently
        self.data.changed.connect(self._on_form_changed)
        self.marker.changed.connect(self._on_form_changed)
        self.data.said.connect(self._on_data_said)
        s = self.session
        s.event.connect(self._on_event)
        s.trained.connect(a.trained)
        s.predicted.connect(a.predicted)
        s.failed.connect(a.failed)
        s.ended.connect(a.ended)
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
            return T.ready_for_list(len(self.data.pairs))
        return next_step(self.form, self.session.model)

    def _on_form_changed(self) -> None:
        self.marker.row.visible = self.form.uses("classes")
        self.actions.confirmed = None
        self.train_btn.text = "Train"
        if not self.form.task_info.predicts_items:  # class displays belong to classification
            self.confusion.show_report(None)
            self.legend.show_entries(None)
        if not self.session.busy:
            self.status.value = T.after_failure(self.actions.failure, self.guidance())
        self._update_buttons()

    def _on_data_said(self, text: str) -> None:
        """What a Training data button did, and the next step."""
        if notices.said_level(text) == "warning":
            self.status.warn(text)
        elif not self.session.busy:
            self.status.info(f"{text} {self.guidance()}")

    def _update_buttons(self) -> None:
        s = self.session
        busy, training = s.busy, s.training
        self.train_btn.enabled = not busy
        self.continue_btn.enabled = not busy and s.trainable
        self.pause_btn.enabled = training
        if not training:
            self.pause_btn.text = "Pause"
        self.stop_btn.enabled = bool(RUNS & set(s.workers))
        image = self.form.image.value
        self.predict_btn.enabled = not busy and s.model is not None and image is not None
        self.several_btn.enabled = not busy and s.model is not None
        self.predict_btn.tooltip = T.predict_tooltip(s.model, busy, image)
        self.files.update()

    # ---------------------------------------------------------------- actions
    @property
    def busy(self) -> bool:
        return self.session.busy

    def stop(self) -> None:
        self.actions.stop()

    def _on_event(self, run, ev) -> None:
        """An event of ``run`` (``None`` for a save): the handler table applies it (:attr:`.RunDisplay.handlers`)."""
        self.display.handlers(run, ev)

    def _on_paused(self, paused: bool) -> None:
        self.pause_btn.text = "Resume" if paused else "Pause"
        self.display.paused(self.session.run, paused)

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
