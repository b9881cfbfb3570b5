"""Live training in the viewer: the user's strokes and view go to the running worker; its previews come back.

:class:`LiveLink` follows one live run. It reads edits of the annotation layer from
napari's own events (a ``paint`` event after every brush, eraser or fill stroke; a
``data`` event when the data is replaced; a cheap check every second for changes
that raise no event, such as undo), copies the small changed box and sends it to
the worker as an :class:`~napari_bioimg.core.live.AnnotationEdit`. The camera and
the current slice become :class:`~napari_bioimg.core.live.ViewChanged` messages (at
most a few per second). Previews of the view are written into the result layer
once the brush rests,
with ``<image> [uncertainty]`` under it (just above the image: it never hides the
result or the strokes; hidden until the *Uncertainty* toggle shows it) and a
``confidence`` column in the result layer's features. *Where next* moves the camera
to the most uncertain region not yet annotated and draws a box around it
(:mod:`.wherenext`). The user's layers are only ever read. Main thread only.
"""

from __future__ import annotations

import time

import numpy as np
from qtpy.QtCore import QTimer

from . import layers as L
from .paintbox import stroke_box
from .wherenext import BOX_LAYER, WhereNext, camera

#: Milliseconds the view must rest before it is sent (panning emits dozens of camera events).
VIEW_DELAY_MS = 250
#: Milliseconds between checks for changes that raise no event (undo, redo, scripts).
CHECK_MS = 1000
#: Milliseconds the brush must rest before a preview is written (no 512² layer upload in the middle of a stroke).
PAINT_REST_MS = 250


class LiveLink:
    """Feeds one live training run from the viewer and shows what it sends back."""

    def __init__(self, viewer, session, results):
        self.viewer, self.session, self.results = viewer, session, results
        self.run = None
        self.annotations_key = None
        self.classes_layer_key = None
        self.uncertainty_key = None
        self.show_uncertainty = False  # the Uncertainty toggle
        self.sent = 0
        self._checksum = None
        self._view_timer = QTimer()
        self._view_timer.setSingleShot(True)
        self._view_timer.timeout.connect(self.send_view)
        self._check_timer = QTimer()
        self._check_timer.timeout.connect(self._check_unnoticed)
        self._classes_timer = QTimer()
        self._classes_timer.setSingleShot(True)
        self._classes_timer.timeout.connect(self._send_classes)
        self._read_classes = None
        self._connected: list = []
        self._painted_at = 0.0  # when the brush last painted
        self._pending = None  # the newest preview, held while the brush moves
        self._rest_timer = QTimer()
        self._rest_timer.setSingleShot(True)
        self._rest_timer.timeout.connect(self._flush)

    @property
    def active(self) -> bool:
        return self.run is not None

    # ---------------------------------------------------------------- starting and stopping
    def start(self, run, annotations, classes_source=None, read_classes=None) -> None:
        """Follow ``run``: edits of ``annotations`` (a Labels layer) and, for classification, of
        ``classes_source`` (a Points layer; ``read_classes()`` gives its class request)."""
        self.stop()
        self.run = run
        self.sent = 0  # annotation edits sent to this run's worker (its LivePreview.edits counts them trained on)
        self.annotations_key = L.layer_key(annotations) if annotations is not None else None
        if annotations is not None and run.objects is None:  # scribbles / masks: the layer the user paints
            self._connect(annotations.events.paint, self._on_paint)
            self._connect(annotations.events.data, self._on_data)
            self._checksum = self._digest(annotations)
            self._check_timer.start(CHECK_MS)
        if classes_source is not None and read_classes is not None:
            self.classes_layer_key = L.layer_key(classes_source)
            self._read_classes = read_classes
            for name in ("data", "features", "feature_defaults"):
                ev = getattr(classes_source.events, name, None)
                if ev is not None:
                    self._connect(ev, lambda *a: self._classes_timer.start(VIEW_DELAY_MS))
        cam, dims = camera(self.viewer).events, self.viewer.dims.events
        for ev in (cam.center, cam.zoom, dims.current_step, dims.ndisplay):
            self._connect(ev, self._view_moved)
        self.send_view()

    def stop(self) -> None:
        for ev, slot in self._connected:
            try:
                ev.disconnect(slot)
            except (TypeError, ValueError, RuntimeError):
                pass
        self._connected.clear()
        self._pending = None
        for timer in (self._view_timer, self._check_timer, self._classes_timer, self._rest_timer):
            try:
                timer.stop()
            except RuntimeError:  # Qt already deleted it (the application is going away)
                pass
        self.run = None

    def _connect(self, ev, slot) -> None:
        ev.connect(slot)
        self._connected.append((ev, slot))

    # ---------------------------------------------------------------- user -> worker
    def _annotations(self):
        return L.find_layer(self.viewer, self.annotations_key)

    def _on_paint(self, event) -> None:
        self._painted_at = time.monotonic()
        layer = self._annotations()
        if layer is None:
            return
        box = stroke_box(event.value, tuple(layer.data.shape))
        if box is not None:
            self._send_box(layer, box)
        self._checksum = self._digest(layer)

    def _on_data(self, event=None) -> None:
        layer = self._annotations()
        if layer is not None:
            self._send_box(layer, tuple(slice(0, n) for n in layer.data.shape))
            self._checksum = self._digest(layer)

    def _send_box(self, layer, box) -> None:
        from ..core.live import AnnotationEdit

        values = np.array(layer.data[box], copy=True)  # a copy: the user paints on
        self.session.send(AnnotationEdit(box, values))
        self.sent += 1

    @staticmethod
    def _digest(layer) -> int | None:
        data = layer.data
        if not isinstance(data, np.ndarray):
            return None
        return hash(np.ascontiguousarray(data).tobytes())

    def _check_unnoticed(self) -> None:
        """Undo, redo and scripts change the data without a paint event: send the whole layer then."""
        layer = self._annotations()
        if layer is None or not self.active:
            return
        digest = self._digest(layer)
        if digest is not None and digest != self._checksum:
            self._on_data()

    def _send_classes(self) -> None:
        from ..core import BioimgError
        from ..core.live import ClassesChanged

        if self._read_classes is None:
            return
        try:
            read = self._read_classes()
        except BioimgError:
            return  # e.g. a point without a class yet: wait for the user to finish
        self.session.send(ClassesChanged(read))

    def _view_moved(self, event=None) -> None:
        if self.active:
            self._view_timer.start(VIEW_DELAY_MS)

    def view_box(self) -> tuple[slice, ...] | None:
        """What the user sees, over the annotation layer's axes: the current slice and the visible pixels."""
        layer = self._annotations() or L.find_layer(self.viewer, self.run.sample.image_key if self.run else None)
        if layer is None:
            return None
        shape = tuple(layer.data.shape)
        index = L.data_index(layer, self.viewer)
        box = [slice(i, i + 1) for i in index]
        try:
            corners = np.asarray(layer.corner_pixels)
        except Exception:  # noqa: BLE001 (no canvas yet)
            corners = None
        for d in self.viewer.dims.displayed:
            d = d - (self.viewer.dims.ndim - len(shape))
            if not 0 <= d < len(shape):
                continue
            if corners is None or corners.shape[1] != len(shape):
                box[d] = slice(0, shape[d])
            else:
                lo, hi = int(max(0, corners[0, d])), int(min(shape[d], corners[1, d] + 1))
                box[d] = slice(lo, hi) if hi > lo else slice(0, shape[d])
        return tuple(box)

    def send_view(self) -> None:
        from ..core.live import ViewChanged

        if not self.active:
            return
        box = self.view_box()
        if box is not None:
            self.session.send(ViewChanged(box))

    # ---------------------------------------------------------------- worker -> viewer
    def show(self, run, ev) -> None:
        """A :class:`~napari_bioimg.core.events.LivePreview`: the result, its uncertainty and confidence (held
        while the brush moves: the newest is written once it rests)."""
        if run.objects is None and time.monotonic() - self._painted_at < PAINT_REST_MS / 1000:
            self._pending = (run, ev)
            self._rest_timer.start(PAINT_REST_MS)
            return
        self._pending = None
        if run.objects is not None:  # classification: the objects coloured by class (the whole sample)
            index = tuple(b.start for b, a in zip(ev.box, run.axes.replace("C", "")) if a not in "ZYX"[-run.spatial_dims:])
            self.results.objects_preview(run, ev.data, index)
            return
        if ev.kind != "labels":
            return
        layer = self.results.show_region(run, ev.data, ev.box)
        if layer is None:
            return
        if ev.confidence:
            ids = sorted(ev.confidence)
            layer.features = {"index": ids, "confidence": np.round([ev.confidence[i] for i in ids], 3)}
        if ev.uncertainty is not None:
            self._show_uncertainty(run, layer, ev)

    def _flush(self) -> None:
        if self._pending is not None and self.active:
            self.show(*self._pending)

    def _show_uncertainty(self, run, result, ev) -> None:
        layer = L.find_layer(self.viewer, self.uncertainty_key)
        shape = tuple(result.data.shape)
        if layer is None or tuple(layer.data.shape) != shape:
            source = L.find_layer(self.viewer, run.sample.image_key)
            if source is None:
                return
            layer = L.result_layer(self.viewer, source, f"{run.sample.image_name} [uncertainty]", "image", shape,
                                   np.float32, run.axes)
            layer.colormap, layer.blending, layer.opacity = "magma", "additive", 0.5
            layer.contrast_limits = (0.0, 1.0)
            layer.visible = self.show_uncertainty
            self.uncertainty_key = L.layer_key(layer)
            self._under_the_result(layer, source)
            if run.select is not None and L.find_layer(self.viewer, run.select) is not None:
                L.select(self.viewer, run.select)  # the user goes on painting in their layer
        data = np.asarray(layer.data)
        data[ev.box] = ev.uncertainty.reshape(data[ev.box].shape)
        if layer.visible:  # a hidden layer is read by Where next, not drawn
            layer.refresh()

    def _under_the_result(self, layer, source) -> None:
        """Move the uncertainty layer just above its image: under the result and the user's strokes."""
        layers = self.viewer.layers
        here, image = layers.index(layer), layers.index(source)
        if here > image + 1:
            layers.move(here, image + 1)

    def uncertainty(self):
        return L.find_layer(self.viewer, self.uncertainty_key)

    def set_uncertainty_shown(self, shown: bool) -> None:
        """The *Uncertainty* toggle: show or hide the layer (hidden by default)."""
        self.show_uncertainty = bool(shown)
        layer = self.uncertainty()
        if layer is not None and layer.visible != self.show_uncertainty:
            layer.visible = self.show_uncertainty
            if layer.visible:
                layer.refresh()


#: Tasks that can train live (the annotations a user paints or points while training runs).
LIVE_TASKS = ("semantic", "instance", "classify")
#: Key that moves to the next suggested region while the viewer has the focus.
WHERE_NEXT_KEY = "Alt-N"


class LivePanel:
    """The widget's live controls: *Live*, *Where next?*, the *Uncertainty* toggle and the suggested regions."""

    def __init__(self, viewer, session, results, status):
        from magicgui.widgets import CheckBox, Container, PushButton, Select

        self.viewer, self.status = viewer, status
        self.link = LiveLink(viewer, session, results)
        self.where = WhereNext(viewer)
        self.source = ""  # what predicted the last preview (the status line says it)
        self.checkbox = CheckBox(text="Live", tooltip=(
            "Train while you annotate: training goes on until Stop (the time limit does not end it; after a few "
            "minutes without an edit it pauses until your next stroke) and learns every stroke you paint, erase or "
            "fill without a restart; new classes grow the network. The view you look at is predicted every couple "
            "of seconds (the first previews by a fast pixel classifier, then by the network). For scribbles, masks "
            "and classification (points)."))
        self.next_btn = PushButton(text="Where next?", enabled=False, tooltip=(
            f"Go to the most uncertain region that has no annotation yet and draw a box around it ({WHERE_NEXT_KEY} "
            "in the viewer); the list below holds the next best ones"))
        self.uncertainty_box = CheckBox(text="Uncertainty", value=False, tooltip=(
            "Show '<image> [uncertainty]' (bright where the live model is unsure), under the result and your "
            "strokes"))
        self.suggestions = Select(choices=[], visible=False, tooltip="Suggested regions, most uncertain first")
        self.row = Container(widgets=[self.checkbox, self.next_btn, self.uncertainty_box], layout="horizontal",
                             labels=False)
        self.next_btn.changed.connect(lambda *_: self.where_next())
        self.uncertainty_box.changed.connect(lambda value: self.link.set_uncertainty_shown(value))
        self.suggestions.changed.connect(self._picked)
        self._bound = False
        try:
            viewer.bind_key(WHERE_NEXT_KEY, lambda v: self.where_next(), overwrite=True)
            self._bound = True
        except Exception:  # noqa: BLE001 (a key binding is a convenience)
            pass

    def wants(self, task: str, fine_tune: bool) -> bool:
        return bool(self.checkbox.value) and task in LIVE_TASKS and not fine_tune

    def begin(self, run, form) -> None:
        """``run`` trains live: follow the form's annotation (and, for classification, class) layer."""
        from . import classes as C

        objects, source, image = form.annotations.value, form.classes.value, form.image.value
        read = None
        if run.objects is not None and source is not None:
            read = lambda: C.class_request(form.classes.value, objects, image)  # noqa: E731
        self.link.start(run, objects, classes_source=source if read is not None and not isinstance(source, str)
                        else None, read_classes=read)
        self.next_btn.enabled = run.objects is None
        self.source = ""

    def handlers(self) -> dict:
        """Live events -> their handlers (each takes ``(run, ev)``): rows of the widget's handler table."""
        from ..core import events as E

        return {type(None): self._heartbeat, E.LivePreview: self._preview, E.LiveWaiting: self._waiting,
                E.LivePaused: self._paused}

    def _heartbeat(self, run, ev) -> None:
        """``None``: a heartbeat while waiting for annotations."""

    def _preview(self, run, ev) -> None:
        self.link.show(run, ev)
        self.source = ev.source

    def _waiting(self, run, ev) -> None:
        self.status.info(f"Live: waiting for annotations you can train on: {ev.reason}. Paint on; training "
                         "starts by itself.")  # the status line, not a pop-up: nothing is wrong

    def _paused(self, run, ev) -> None:
        self.status.info(f"Live: paused after {ev.idle / 60:.0f} min without an edit; the model so far is kept. "
                         "Paint a stroke to go on, or Stop to finish.")

    def clock(self, ev) -> str:
        """The live part of the status line: the time trained, what predicts the previews, until Stop."""
        from .prose import fmt_time, part

        shown = f" · preview: {self.source}" if self.source else ""
        return part("live", fmt_time(ev.elapsed), "trained") + shown + " · until Stop"

    def end(self) -> None:
        self.link.stop()
        self.where.clear()
        self.suggestions.choices = []
        self.suggestions.visible = False
        self.next_btn.enabled = False

    def where_next(self) -> None:
        regions = self.where.suggest(self.link.uncertainty(), self.link._annotations())
        if not regions:
            self.status.value = "Where next: no uncertainty yet (train Live first), or everything is annotated."
            return
        labels = [f"{i + 1}. " + ", ".join(f"{b.start}–{b.stop}" for b in r.box) + f" (uncertainty {r.score:.2f})"
                  for i, r in enumerate(regions)]
        self.suggestions.choices = labels
        rows = self.suggestions.native
        rows.setFixedHeight(rows.sizeHintForRow(0) * len(labels) + 2 * rows.frameWidth() + 4)  # no empty rows
        self.suggestions.visible = True
        self.status.value = (f"Where next: {labels[0]} (boxed in '{BOX_LAYER}'). Annotate there; the list holds "
                             f"{len(labels) - 1} more.")

    def _picked(self, value=None) -> None:
        chosen = self.suggestions.value
        if chosen:
            self.where.go_to(int(str(chosen[0]).split(".")[0]) - 1, self.link.uncertainty())

    def close(self) -> None:
        self.link.stop()
        self.where.clear()
        if self._bound:
            try:
                self.viewer.bind_key(WHERE_NEXT_KEY, None, overwrite=True)
            except Exception:  # noqa: BLE001
                pass
