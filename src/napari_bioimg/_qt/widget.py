"""The napari dock widget: pick layers, train in the background, watch, stop, predict, save.

Thin by design: it turns GUI state into a :class:`~napari_bioimg.core.TrainConfig`,
runs the engine's generators in napari ``thread_worker``s, and applies their events
to layers on the main thread. All computation lives in :mod:`napari_bioimg.core`.
This module holds the form and training; predictions and result layers are in
:mod:`._results`, saving / loading / exporting in :mod:`._files`.
"""

from __future__ import annotations

import os
import threading

import napari
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, LineEdit, PushButton, SpinBox
from napari.layers import Image, Labels, Points
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QSizePolicy
from superqt import QCollapsible

from . import classes as C
from . import layers as L
from .files import FilesMixin
from .jobs import train_job
from .lifetime import CloseWatch, detach
from .plots import LossPlot
from .progress import DockProgress, QuietGC
from .results import ResultsMixin

DEFAULT_LR = 3e-3
DEFAULT_PATCH = 128


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class BioimgWidget(ResultsMixin, FilesMixin, Container):
    """Train a U-Net (and other registered models) on the current image and annotations."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__(labels=False)
        from ..core import list_tasks
        from ..core.runtime.device import available_devices

        self.viewer = viewer
        self._train_worker = None
        self._predict_worker = None
        self._control = None
        self._checkpoint: dict | None = None
        self._loaded = None  # a LoadedModel when the model came from another tool's bioimage.io package
        self._export_worker = None
        self._gc = QuietGC()
        self._run: dict = {}
        self._watched: set = set()  # layer keys whose renames we follow

        self.task = ComboBox(label="Task", choices=list_tasks(), value="instance",
                             tooltip="instance: separate objects from instance masks; semantic: classes from scribbles")
        self.image = ComboBox(label="Image", choices=self._image_choices, nullable=True)
        self.annotations = ComboBox(label="Annotations", choices=self._labels_choices, nullable=True,
                                    tooltip="Labels layer: instance masks, or class scribbles (0 = not annotated)")
        self.classes = ComboBox(label="Classes", choices=self._class_choices, nullable=True, visible=False,
                                tooltip="Where the classes of a few objects come from: a Points layer with a "
                                        "'class' feature (the object under each point), a Labels layer painted "
                                        "with class ids over objects, or the objects layer's features table")
        self.target = ComboBox(label="Target", choices=self._image_choices, nullable=True, visible=False,
                               tooltip="restore: a clean (or high-SNR) image of the same pixels")
        self.reference = ComboBox(label="Reference", choices=self._image_choices, nullable=True, visible=False,
                                  tooltip="optional clean image: PSNR and SSIM of the result against it "
                                          "(denoise also validates against it)")
        # choices from the task, not a fixed list: napari resets every choice of the dock widget
        # whenever a layer is added or removed (including the result layer Train adds)
        self.model = ComboBox(label="Model", choices=self._model_choices, value="unet")
        self.time_limit = SpinBox(label="Time limit [s]", value=120, min=1, max=7 * 24 * 3600, step=10)
        self.device = ComboBox(label="Device", choices=["auto"] + available_devices(), value="auto",
                               tooltip=f"auto = {available_devices()[0]}")
        # advanced settings
        self.axes = ComboBox(label="Axes", choices=self._axes_choices,
                             tooltip="ZYX: volume; TYX: frames (a 2D model per frame)")
        self.dims = ComboBox(label="Model dims", choices=["auto", "2D", "3D"], value="auto",
                             tooltip="auto: 3D if the axes have Z; 2D: slice by slice")
        self.epochs = SpinBox(label="Epochs (0 = time)", value=0, min=0, max=100000)
        self.patch = SpinBox(label="Patch size", value=DEFAULT_PATCH, min=16, max=1024, step=16)
        self.patch_z = SpinBox(label="Patch Z (3D)", value=16, min=8, max=256, step=8,
                               tooltip="Z size of 3D patches; keep it small for anisotropic stacks (coarse Z): "
                                       "the 3D U-Net then halves Z less often than Y and X")
        self.temporal = SpinBox(label="Temporal context", value=0, min=0, max=10,
                                tooltip="Time-lapse (TYX): also show the model frames t-N..t+N as channels")
        self.batch = SpinBox(label="Batch size", value=8, min=1, max=256)
        self.lr = FloatSpinBox(label="Learning rate", value=DEFAULT_LR, min=1e-6, max=1.0, step=1e-4)
        self.optimizer = ComboBox(label="Optimizer", choices=["adam", "adamw", "sgd"], value="adam")
        self.depth = SpinBox(label="U-Net depth", value=3, min=1, max=6)
        self.base_channels = SpinBox(label="Base channels", value=16, min=4, max=128, step=4)
        self.val = SpinBox(label="Validation %", value=15, min=0, max=50)
        self.augment = CheckBox(label="Augment", value=True)
        self.preview = CheckBox(label="Live preview", value=True)
        self.seed = LineEdit(label="Seed", value="0")
        self.advanced = Container(widgets=[self.axes, self.dims, self.epochs, self.patch, self.patch_z,
                                           self.temporal, self.batch, self.lr,
                                           self.optimizer, self.depth, self.base_channels, self.val, self.augment,
                                           self.preview, self.seed], labels=True)
        collapsible = QCollapsible("Advanced")
        collapsible.addWidget(self.advanced.native)

        self.train_btn = PushButton(text="Train", tooltip="Train a new model")
        self.continue_btn = PushButton(text="Continue", enabled=False,
                                       tooltip="Continue training the current model on the current annotations "
                                               "(e.g. after correcting its prediction); the loss curve continues")
        self.pause_btn = PushButton(text="Pause", enabled=False,
                                    tooltip="Pause / resume training; the time budget does not run while paused")
        self.stop_btn = PushButton(text="Stop", enabled=False, tooltip="Stop and keep the model so far")
        self.predict_btn = PushButton(text="Predict", enabled=False)
        self.save_btn = PushButton(text="Save model…", enabled=False)
        self.load_btn = PushButton(text="Load model…", tooltip="A napari-bioimg model (.pt) or a bioimage.io "
                                                               "package (.zip)")
        self.export_btn = PushButton(text="Export…", enabled=False,
                                     tooltip="bioimage.io package (.zip), TorchScript or ONNX, for other tools")
        self.status = Label(value="Pick an image and its annotations, then Train.")
        self.status.native.setWordWrap(True)
        self.status.native.setMinimumHeight(40)
        self.status.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.progress = DockProgress()
        self.plot = LossPlot()
        self.confusion = C.ConfusionPlot()

        self.form = Container(widgets=[self.task, self.image, self.annotations, self.classes, self.target,
                                        self.reference, self.model, self.time_limit, self.device], labels=True)
        self.buttons = Container(widgets=[self.train_btn, self.continue_btn, self.pause_btn, self.stop_btn,
                                          self.predict_btn], layout="horizontal", labels=False)
        self.files = Container(widgets=[self.save_btn, self.load_btn, self.export_btn], layout="horizontal",
                               labels=False)
        self.append(self.form)
        layout = self.native.layout()
        for part in (collapsible, self.buttons.native, self.files.native, self.progress, self.status.native, self.plot,
                     self.confusion):
            layout.addWidget(part)
        layout.addStretch(1)

        self.train_btn.changed.connect(self.start_training)
        self.continue_btn.changed.connect(self.continue_training)
        self.pause_btn.changed.connect(self.toggle_pause)
        self.export_btn.changed.connect(self._export_dialog)
        self.stop_btn.changed.connect(self.stop)
        self.predict_btn.changed.connect(self.start_prediction)
        self.save_btn.changed.connect(self._save_dialog)
        self.load_btn.changed.connect(self._load_dialog)
        self.image.changed.connect(self._on_image_changed)
        self.task.changed.connect(self._on_task_changed)
        self.annotations.changed.connect(self._refresh_classes)
        for ev in (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.moved):
            ev.connect(self._refresh_layers)
        self.closed = False
        self._close_watch = CloseWatch(self.native, self._shutdown)
        self._refresh_layers()
        # torch's one-time start-up (importing its compiler stack, first kernels) now, off the GUI thread,
        # rather than in the first seconds of training where it would freeze the viewer
        from ..core.runtime.fast import warm_up

        threading.Thread(target=warm_up, name="napari-bioimg-warm-up", daemon=True).start()
        self.progress.warm_up()

    # ---------------------------------------------------------------- layer pickers
    def _image_choices(self, widget=None):
        return [(lay.name, lay) for lay in self.viewer.layers if isinstance(lay, Image) and not L.is_ours(lay)]

    def _labels_choices(self, widget=None):
        return [(lay.name, lay) for lay in self.viewer.layers if isinstance(lay, Labels) and not L.is_ours(lay)]

    def _class_choices(self, widget=None):
        return C.source_choices(self.viewer, self.annotations.value if hasattr(self, "annotations") else None)

    def _refresh_classes(self, value=None) -> None:
        """Re-list class sources; prefer a Points layer (the quickest way to mark a few objects)."""
        self.classes.reset_choices()
        current, objects = self.classes.value, self.annotations.value
        features_usable = objects is not None and "class" in objects.features
        if current is None or L.same_layer(current, objects) or (isinstance(current, str) and not features_usable):
            points = [v for v in self.classes.choices if isinstance(v, Points)]
            self.classes.value = points[0] if points else C.FEATURES

    def _model_choices(self, widget=None):
        from ..core import get_task, list_models

        task = self.task.value if hasattr(self, "task") else "instance"
        return list_models(kind=get_task(task).model_kind)

    def _axes_choices(self, widget=None):
        return L.axes_choices(self.image.value if hasattr(self, "image") else None)

    def _refresh_layers(self, event=None) -> None:
        for w in (self.image, self.annotations, self.target, self.reference):
            w.reset_choices()
        images = [c for c in self.image.choices if c is not None]
        if self.image.value is None and images:
            self.image.value = images[0]
        self._pick_annotations()
        self._refresh_classes()
        self.axes.reset_choices()
        for layer in self.viewer.layers:
            if L.layer_key(layer) not in self._watched:  # follow renames
                self._watched.add(L.layer_key(layer))
                layer.events.name.connect(self._refresh_layers)

    def _pick_annotations(self) -> None:
        """Prefer a Labels layer with the image's shape (ignoring a channel axis)."""
        img = self.image.value
        current = self.annotations.value
        if img is None or (current is not None and self._fits(current, img)):
            return
        for lay in self.annotations.choices:
            if lay is not None and self._fits(lay, img):
                self.annotations.value = lay
                return

    @staticmethod
    def _fits(labels, image) -> bool:
        """Whether ``labels`` covers ``image``'s pixels (shapes only: a lazy layer is never computed here)."""
        shape, ishape = L.data_shape(labels), L.data_shape(image)
        return shape == ishape or (image.rgb and shape == ishape[:-1])

    def _on_image_changed(self, value=None) -> None:
        self.axes.reset_choices()
        self._pick_annotations()

    def _on_task_changed(self, value=None) -> None:
        from ..core import get_task

        task = get_task(self.task.value)
        self.model.reset_choices()
        if getattr(task, "default_model", None) in self.model.choices:
            self.model.value = task.default_model
        inputs = getattr(task, "inputs", ("image", "labels"))
        self.annotations.visible = "labels" in inputs or "objects" in inputs
        self.annotations.label = "Objects" if "objects" in inputs else "Annotations"
        self.classes.visible = "classes" in inputs
        self.target.visible = "target" in inputs
        self.reference.visible = task.output_kind == "image"
        self.batch.value = task.default_batch_size
        if not task.direct_model:
            self.confusion.show_report(None)
        # the task's own defaults for the advanced settings (the user can still change them)
        device = (self.device.value if self.device.value != "auto" else self.device.choices[1]).split(":")[0]
        suggested = task.default_model_config(2, device, self.model.value)
        for key, field in (("depth", self.depth), ("base_channels", self.base_channels)):
            if key in suggested:
                field.value = suggested[key]
        self.lr.value = getattr(task, "default_learning_rate", None) or DEFAULT_LR
        self.patch.value = getattr(task, "default_patch", None) or DEFAULT_PATCH

    # ---------------------------------------------------------------- config
    def make_config(self):
        """The :class:`TrainConfig` described by the widget's fields."""
        from ..core import TrainConfig, get_task

        seed = self.seed.value.strip()
        dims = {"auto": None, "2D": 2, "3D": 3}[self.dims.value]
        volumetric = dims == 3 or (dims is None and "Z" in (self.axes.value or ""))
        # a 3D patch keeps Z short: cubes of the YX size would be ~100x the work of a 2D patch
        patch = (self.patch_z.value, self.patch.value, self.patch.value) if volumetric else self.patch.value
        if get_task(self.task.value).direct_model:
            patch = None  # classification fits its crops to the objects
        return TrainConfig(
            task=self.task.value, model=self.model.value,
            model_config={"depth": self.depth.value, "base_channels": self.base_channels.value},
            spatial_dims=dims,
            time_limit=float(self.time_limit.value) if not self.epochs.value else None,
            epochs=self.epochs.value or None, batch_size=self.batch.value, patch_size=patch,
            learning_rate=float(self.lr.value), optimizer=self.optimizer.value,
            val_fraction=self.val.value / 100, augment=self.augment.value, seed=int(seed) if seed else None,
            device=self.device.value, preview_every=4.0 if self.preview.value else 0.0,
            num_threads=max(1, (os.cpu_count() or 2) - 1),  # one core stays free for the viewer
            temporal_context=self.temporal.value,
        ).validate()

    # ---------------------------------------------------------------- training
    @property
    def busy(self) -> bool:
        return any(w is not None for w in (self._train_worker, self._predict_worker, self._export_worker))

    @property
    def trainable(self) -> bool:
        """Whether the current model can be trained further, saved and exported (not another tool's)."""
        return self._checkpoint is not None and self._loaded is None

    def continue_training(self, value=None) -> None:
        """Fine-tune the current model on the current annotations; a new budget, the loss curve continues."""
        self.start_training(fine_tune=True)

    def start_training(self, value=None, *, fine_tune: bool = False) -> None:
        from ..core import BioimgError, Control, get_task

        if self.busy or (fine_tune and not self.trainable):
            return
        image = self.image.value
        if image is None:
            show_error("napari-bioimg: open or pick an image layer first")
            return
        if fine_tune:  # the model decides task, family and architecture
            self.task.value = self._checkpoint["task"]["name"]
            self.model.value = self._checkpoint["model"]["name"]
        task = get_task(self.task.value)
        inputs = getattr(task, "inputs", ("image", "labels"))
        ann_layer = self.annotations.value if ("labels" in inputs or "objects" in inputs) else None
        if task.needs_annotations and ann_layer is None:
            what = "the objects to classify (a Labels layer)" if "objects" in inputs else \
                "a Labels layer with painted annotations (or masks)"
            show_error(f"napari-bioimg: pick {what} first")
            return
        try:
            config = self.make_config()
            classes = None
            if "classes" in inputs:
                classes = C.class_request(self.classes.value, ann_layer, image, per_frame="objects" not in inputs)
        except BioimgError as err:
            show_error(f"napari-bioimg: {err}")
            self.status.value = f"Error: {err}"
            return
        extra = {}
        if "target" in getattr(task, "inputs", ()):
            if self.target.value is None:
                show_error("napari-bioimg: pick a Target layer: a clean (or high-SNR) image of the same pixels")
                return
            extra["target"] = L.snapshot(self.target.value)
        if task.output_kind == "image" and self.reference.value is not None:
            extra["reference"] = L.snapshot(self.reference.value)
        # a snapshot: the user may paint on while training runs; lazy layers are read in the worker
        annotations = L.snapshot(ann_layer) if ann_layer is not None else None
        axes = self.axes.value
        spatial_dims = config.spatial_dims or (3 if "Z" in axes else 2)
        index = L.batch_index(axes, spatial_dims, L.data_index(image, self.viewer)[: len(axes.replace("C", ""))])
        self._control = Control()
        if fine_tune:  # the model's dimensionality, whatever the Model dims field says
            spatial_dims = int(self._checkpoint["data"]["spatial_dims"])
            config.spatial_dims = spatial_dims
            config.patch_size = (16, self.patch.value, self.patch.value) if spatial_dims == 3 else self.patch.value
        self._run = {"image": image, "axes": axes, "model": config.model, "task": task.name,
                     "spatial_dims": spatial_dims, "kind": task.output_kind,
                     "objects": annotations if "objects" in inputs else None, "colors": {},
                     "label": getattr(task, "result_label", "") or config.model}
        if not fine_tune:
            self.plot.reset()
        self.progress.begin(f"Training {config.model}")
        if self.preview.value:  # add the result layer now (napari takes ~0.1 s), not mid-training
            placeholder = self._placeholder_layer(task.output_kind)
            self._run["placeholder"] = L.layer_key(placeholder) if placeholder is not None else None
        worker = create_worker(train_job, L.layer_data(image), annotations, config, classes=classes,
                               axes=axes, control=self._control,
                               preview_index=index if self.preview.value else None, rgb=image.rgb,
                               init_checkpoint=self._checkpoint if fine_tune else None, extra=extra,
                               _start_thread=False,
                               _connect={"yielded": self._on_event, "returned": self._on_trained,
                                         "errored": self._on_error, "finished": self._on_train_finished,
                                         "paused": self._on_paused, "resumed": self._on_resumed})
        self._train_worker = worker
        self._set_running(True)
        how = "Continuing" if fine_tune else "Starting"
        self.status.value = f"{how} {config.model} ({task.name}) on {image.name}…"
        self._gc.hold()
        worker.start()

    def toggle_pause(self, value=None) -> None:
        """Pause or resume the running training (it pauses at its next step)."""
        worker = self._train_worker
        if worker is None:
            return
        if worker.is_paused:
            worker.resume()
        else:
            worker.pause()
            self.status.value = "Pausing after this step…"

    def _on_paused(self) -> None:
        self.pause_btn.text = "Resume"
        ev = self._run.get("last")
        at = f" at step {ev.step}" if ev is not None else ""
        self.status.value = f"Paused{at}; the time budget is on hold. Resume or Stop."

    def _on_resumed(self) -> None:
        self.pause_btn.text = "Pause"
        self._update_status()

    def stop(self, value=None) -> None:
        """Finish the current step, keep the model so far (training) or cancel (prediction)."""
        if self._control is not None:
            self._control.stop()
            self.status.value = "Stopping…"
        if self._train_worker is not None and self._train_worker.is_paused:
            self._train_worker.resume()  # a paused generator only sees the stop when it runs again

    def _set_running(self, running: bool) -> None:
        training = running and self._train_worker is not None
        self.train_btn.enabled = not running
        self.continue_btn.enabled = not running and self.trainable
        self.pause_btn.enabled = training
        if not training:
            self.pause_btn.text = "Pause"
        self.predict_btn.enabled = not running and self._checkpoint is not None
        self.load_btn.enabled = not running
        self.save_btn.enabled = not running and self.trainable
        self.export_btn.enabled = not running and self.trainable
        self.stop_btn.enabled = running and self._export_worker is None

    def _on_event(self, ev) -> None:
        from ..core import events as E

        if isinstance(ev, E.StepDone):
            self.plot.add_loss(ev.step, ev.loss)
            self._run["last"] = ev
            self.progress.set_fraction(ev.fraction)
            self._update_status()
        elif isinstance(ev, E.ValidationDone):
            name = next(iter(ev.metrics), "score")
            self.plot.add_validation(ev.step, ev.score, name)
            self._run["val"] = ev
            self._update_status()
        elif isinstance(ev, E.PreviewReady):
            if self._run.get("objects") is not None:
                self._show_object_classes(ev.data, ev.index)
            else:
                self._show_result(ev.data, ev.index, ev.kind)
        elif isinstance(ev, E.TrainingStarted):
            self._run["started"] = ev
            self.status.value = (f"Training on {ev.device}: {ev.n_parameters:,} parameters, patch "
                                 f"{'×'.join(map(str, ev.patch_size))}")
        elif isinstance(ev, E.PredictProgress):
            self.progress.set_fraction(ev.done / max(ev.total, 1))
            self.status.value = f"Predicting: {ev.done}/{ev.total} {ev.stage}"
        elif isinstance(ev, E.Notice):
            (show_warning if ev.level == "warning" else show_info)(f"napari-bioimg: {ev.message}")

    def _update_status(self) -> None:
        ev = self._run.get("last")
        if ev is None:
            return
        parts = []
        val = self._run.get("val")
        if val is not None:
            parts += [f"{k} {v:.3f}" for k, v in list(val.metrics.items())[:1]]
        parts += [f"step {ev.step}", f"loss {ev.loss:.3f}", f"{ev.steps_per_second:.1f} it/s",
                  f"ETA {_fmt_time(ev.eta)}"]
        self.status.value = " · ".join(parts)

    def _on_trained(self, result) -> None:
        self._checkpoint = result.checkpoint
        self._loaded = None
        self._run["trained"] = True
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items() if k != "best_score")
        how = "stopped" if result.stopped_early else "finished"
        self.status.value = f"Training {how}: {result.steps} steps in {result.seconds:.0f} s. {metrics}"
        self.confusion.show_report(result.checkpoint["task"]["meta"].get("validation_report"))

    def _on_error(self, err) -> None:
        from ..core import BioimgError

        msg = str(err) if isinstance(err, BioimgError) else f"{type(err).__name__}: {err}"
        self.status.value = f"Error: {msg}"
        show_error(f"napari-bioimg: {msg}")

    def _on_train_finished(self) -> None:
        self._train_worker = None
        self._run_ended()
        self._set_running(False)
        if self._run.pop("trained", False) and L.in_viewer(self.viewer, self._run.get("image")):
            self.start_prediction()  # the whole image with the final model (into the placeholder, if any)
        else:
            self._drop_placeholder()

    def _run_ended(self) -> None:
        """A training or prediction run is over: hide its progress, hand old objects back to the collector."""
        self.progress.end()
        self._gc.release()

    def _shutdown(self) -> None:
        """The window is closing: stop every worker without calling back into the widget's Qt parts."""
        self.closed = True
        if self._control is not None:
            self._control.stop()
        for w in (self._train_worker, self._predict_worker, self._export_worker):
            if w is not None:
                detach(w)
        self._train_worker = self._predict_worker = self._export_worker = None
        self.progress.close_activity()
        self._gc.release()
