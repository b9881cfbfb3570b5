"""The form of the dock widget: task, layers, model, budget, device and the advanced settings.

Every setting starts at what the engine suggests (:func:`napari_bioimg.core.config.suggest`)
for the task, model, dimensionality and device, and follows the suggestion until the user
changes it. :meth:`TrainForm.config` is that suggestion plus what the user changed; the
engine validates it (the form shows its messages, it never checks values itself).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from magicgui.widgets import CheckBox, ComboBox, Container, LineEdit
from napari.layers import Image, Labels, Points
from psygnal import Signal
from qtpy.QtCore import Qt
from superqt import QCollapsible

from ..core.settings.declare import default
from ..core.settings.model import ModelOptions
from ..core.settings.train import TrainConfig
from . import classes as C
from . import layers as L
from . import pairing as P
from .controls import RangeGuard, Shown, choice, number
from .guidance import TASKS

_ADVANCED = ("dims", "patch", "patch_z", "temporal", "batch", "lr", "optimizer", "depth", "base_channels", "val",
             "augment", "preview", "seed")


def _model_default(model: str, key: str):
    """The model family's own default for ``key`` (``None`` when it takes no such option)."""
    from ..core.models.registry import model_entry

    try:
        param = inspect.signature(model_entry(model).builder).parameters.get(key)
    except (TypeError, ValueError):
        return None
    return None if param is None or param.default is inspect.Parameter.empty else param.default


#: The Time limit field's help: the model is ready within it (the engine keeps its end inside), then the whole
#: image is predicted (issue 20.3).
TIME_LIMIT_HELP = ("Seconds until the trained model is ready, its final check and calibration included (pauses do "
                   "not count); the result on the whole image comes after that, once it is predicted")


class TrainForm:
    """Task, layer pickers, model, budget, device and the advanced settings; ``changed`` fires on any edit."""

    changed = Signal()
    refused = Signal(str)
    """A typed value outside a control's range, in one sentence (the control keeps its value)."""

    def __init__(self, viewer):
        from ..core import list_tasks
        from ..core.runtime.device import available_devices

        self.viewer = viewer
        self._updating = False
        self.touched: set[str] = set()
        tasks = [(TASKS.get(t, (t, ""))[0], t) for t in list_tasks()]
        self.task = ComboBox(label="Task", choices=tasks, value=default(TrainConfig, "task"),
                             tooltip=self._task_tooltip())
        for i, (_, name) in enumerate(tasks):
            self.task.native.setItemData(i, TASKS.get(name, (name, name))[1], Qt.ItemDataRole.ToolTipRole)
        self.image = ComboBox(label="Image", choices=self._image_choices, nullable=True)
        self.annotations = ComboBox(label="Annotations", choices=self._labels_choices, nullable=True,
                                    tooltip="Labels layer of the image's shape: instance masks (Segment objects) "
                                            "or class scribbles, 0 = not annotated (Segment by scribbles)")
        self.classes = ComboBox(label="Classes", choices=self._class_choices, nullable=True, visible=False,
                                tooltip="Where the classes of a few objects come from: a Points layer with a "
                                        "'class' feature (the object under each point), a Labels layer painted "
                                        "with class ids over objects, or the objects layer's features table")
        self.target = ComboBox(label="Target", choices=self._partner_choices, nullable=True, visible=False,
                               tooltip="A clean (or high-SNR) image of the same pixels")
        self.reference = ComboBox(label="Reference", choices=self._partner_choices, nullable=True, visible=False,
                                  tooltip="Optional clean image of the same pixels: PSNR and SSIM of the result "
                                          "against it (denoise also validates against it)")
        # choices from the task, not a fixed list: napari resets the choices of a dock widget's
        # magicgui fields whenever a layer is added or removed (including the result layer Train adds)
        self.model = ComboBox(label="Model", choices=self._model_choices, value="unet")
        self.time_limit = number(Shown(TrainConfig, "time_limit"), label="Time limit [s]", step=10,
                                 tooltip=TIME_LIMIT_HELP)
        devices = available_devices()
        self.device = ComboBox(label="Device", choices=["auto"] + devices, value=default(TrainConfig, "device"),
                               tooltip=f"auto = {devices[0]}")
        self.axes = ComboBox(label="Axes", choices=self._axes_choices,
                             tooltip="ZYX: a volume; TYX: frames of a time-lapse (a 2D model per frame)")
        dims = ["auto"] + [f"{d}D" for d in Shown(TrainConfig, "spatial_dims").setting.choices]
        self.dims = ComboBox(label="Model dims", choices=dims, value="auto",
                             tooltip="auto: 3D if the axes have Z; 2D: slice by slice")
        steps = default(TrainConfig, "steps_per_epoch")
        self.epochs = number(Shown(TrainConfig, "epochs", zero_unset=True), label="Epochs (0 = time)",
                             tooltip=f"Train this many epochs of {steps} steps instead of for the time limit")
        patch = Shown(TrainConfig, "patch_size")
        self.patch = number(patch, label="Patch size", step=8, tooltip="Y and X size of training patches")
        self.patch_z = number(patch, label="Patch Z (3D)", step=8,
                              tooltip="Z size of 3D patches; keep it small for anisotropic stacks (coarse Z)")
        self.temporal = number(Shown(TrainConfig, "temporal_context"), label="Temporal context",
                               tooltip="Time-lapse (TYX): also show the model frames t-N..t+N as channels")
        self.batch = number(Shown(TrainConfig, "batch_size"), label="Batch size")
        self.lr = number(Shown(TrainConfig, "learning_rate"), label="Learning rate", decimals=4, step=1e-4)
        self.optimizer = choice(Shown(TrainConfig, "optimizer"), label="Optimizer")
        self.depth = number(Shown(ModelOptions, "depth"), label="Network depth",
                            tooltip="Resolution levels of the network")
        self.base_channels = number(Shown(ModelOptions, "base_channels"), label="Base channels", step=4)
        self.val = number(Shown(TrainConfig, "val_fraction", scale=100), label="Validation %",
                          tooltip="Share of the annotations held apart to measure the model while it trains")
        self.augment = CheckBox(label="Augment", value=default(TrainConfig, "augment"),
                                tooltip="Random flips, rotations and intensity changes")
        self.preview = CheckBox(label="Live preview", value=default(TrainConfig, "preview_every") > 0,
                                tooltip="Show the current model's result on the frame you look at while training")
        self.seed = LineEdit(label="Seed", value=str(default(TrainConfig, "seed")),
                             tooltip="Random seed (empty: a new one every time)")
        self.guards = [RangeGuard(w, self.refused.emit) for w in (  # each says when a typed value is out of range
            self.time_limit, self.epochs, self.patch, self.patch_z, self.temporal, self.batch, self.lr, self.depth,
            self.base_channels, self.val)]

        self.main = Container(widgets=[self.task, self.image, self.annotations, self.classes, self.target,
                                       self.reference, self.model, self.time_limit, self.device], labels=True)
        self.advanced = Container(widgets=[self.axes, self.dims, self.epochs, self.patch, self.patch_z,
                                           self.temporal, self.batch, self.lr, self.optimizer, self.depth,
                                           self.base_channels, self.val, self.augment, self.preview, self.seed],
                                  labels=True)
        self.collapsible = QCollapsible("Advanced")
        self.collapsible.addWidget(self.advanced.native)

        for name in _ADVANCED:
            getattr(self, name).changed.connect(lambda *_, name=name: self._user_changed(name))
        self.time_limit.changed.connect(lambda *_: self._user_changed("budget"))
        self.epochs.changed.connect(self._on_epochs_changed)
        self.task.changed.connect(self._on_task_changed)
        self.model.changed.connect(self._suggest)
        self.device.changed.connect(self._suggest)
        self.image.changed.connect(self._on_image_changed)
        self.axes.changed.connect(self._suggest)
        self.annotations.changed.connect(self._refresh_classes)
        for w in (self.image, self.annotations, self.classes, self.target, self.reference, self.model,
                  self.time_limit, self.epochs, self.axes):
            w.changed.connect(self._emit_changed)
        self.refresh_layers()
        self._on_task_changed()

    # ---------------------------------------------------------------- the task
    @staticmethod
    def _task_tooltip() -> str:
        return "What to learn:\n" + "\n".join(f"• {label}: {text}" for label, text in TASKS.values())

    @property
    def task_info(self):
        from ..core import get_task

        return get_task(self.task.value)

    @property
    def task_label(self) -> str:
        return TASKS.get(self.task.value, (self.task.value, ""))[0]

    def _model_choices(self, widget=None):
        from ..core import get_task, list_models

        task = self.task.value if hasattr(self, "task") else "instance"
        return list_models(kind=get_task(task).model_kind)

    def uses(self, picker: str) -> bool:
        """Whether the task takes the ``annotations``, ``classes``, ``target`` or ``reference`` picker."""
        task = self.task_info
        return {"annotations": "labels" in task.inputs or "objects" in task.inputs,
                "classes": "classes" in task.inputs, "target": "target" in task.inputs,
                "reference": task.output_kind == "image"}[picker]

    def _on_task_changed(self, value=None) -> None:
        task = self.task_info
        with self._quiet():
            self.model.reset_choices()
            if task.default_model in self.model.choices:
                self.model.value = task.default_model
        for picker in ("annotations", "classes", "target", "reference"):
            getattr(self, picker).visible = self.uses(picker)
        self.annotations.label = "Objects" if "objects" in task.inputs else "Annotations"
        self.patch.visible = not task.predicts_items
        self._pick_annotations(repick=True)
        self._pick_partners()
        self._suggest()

    # ---------------------------------------------------------------- suggestions and the config
    def spatial_dims(self) -> int:
        """The model's dimensionality: the Model dims field, else 3 when the axes have Z (unless the task says)."""
        dims = {"2D": 2, "3D": 3}.get(self.dims.value)
        if dims is not None:
            return dims
        default = getattr(self.task_info, "default_spatial_dims", None)
        return default or (3 if "Z" in (self.axes.value or "") else 2)

    def suggestion(self, card=None):
        """The engine's settings for the current task, model, dimensionality and device (or those of ``card``)."""
        from ..core.config import suggest

        device = self.device.value if self.device.value != "auto" else self.device.choices[1]
        if card is not None:
            return suggest(card.task, spatial_dims=card.spatial_dims, device=device, model=card.model)
        return suggest(self.task.value, spatial_dims=self.spatial_dims(), device=device, model=self.model.value)

    def _suggest(self, value=None) -> None:
        """Show the engine's suggestion in every field the user has not changed."""
        s = self.suggestion()
        patch = s.patch_size if isinstance(s.patch_size, tuple) else (s.patch_size,)
        values = {"batch": s.batch_size, "lr": s.learning_rate, "optimizer": s.optimizer,
                  "val": round(s.val_fraction * 100), "augment": s.augment, "preview": s.preview_every > 0,
                  "seed": "" if s.seed is None else str(s.seed)}
        if s.patch_size is not None:
            values["patch"] = patch[-1]
            values["patch_z"] = patch[0] if len(patch) == 3 else self.patch_z.value or 16
        for key in ("depth", "base_channels"):
            value = s.model_config.get(key, _model_default(s.model, key))
            getattr(self, key).enabled = value is not None
            if value is not None:
                values[key] = value
        with self._quiet():
            if "budget" not in self.touched and s.time_limit:
                self.time_limit.value = int(s.time_limit)
            for key, value in values.items():
                if key not in self.touched:
                    getattr(self, key).value = value
        self.patch_z.visible = self.spatial_dims() == 3 and s.patch_size is not None
        self.temporal.visible = "T" in (self.axes.value or "")
        self._emit_changed()

    def config(self, card=None):
        """The :class:`TrainConfig`: the engine's suggestion plus what the user changed; validated by the engine.

        With ``card`` (fine-tuning), the model's task, family, dimensionality and architecture win.
        Raises the engine's :class:`~napari_bioimg.core.ConfigError` for a bad value.
        """
        s = self.suggestion(card)
        t = self.touched
        model_config = dict(card.model_config) if card is not None else dict(s.model_config)
        if card is None:
            for key in ("depth", "base_channels"):
                if key in t and getattr(self, key).enabled:
                    model_config[key] = getattr(self, key).value
        patch = s.patch_size
        if isinstance(patch, tuple):
            patch = (self.patch_z.value if "patch_z" in t else patch[0],
                     *(2 * [self.patch.value if "patch" in t else patch[-1]]))
        elif patch is not None and "patch" in t:
            patch = self.patch.value
        seed = self.seed.value.strip()
        if seed and not seed.lstrip("-").isdigit():
            from ..core import ConfigError

            raise ConfigError(f"the seed must be a whole number (or empty for a new one each time), got {seed!r}")
        changes = {
            "model_config": model_config, "patch_size": patch,
            "time_limit": float(self.time_limit.value) if not self.epochs.value else None,
            "epochs": self.epochs.value or None, "device": self.device.value,
            "temporal_context": self.temporal.value, "preview_every": s.preview_every if self.preview.value else 0.0,
        }
        for key, field, value in (("batch", "batch_size", self.batch.value), ("lr", "learning_rate", self.lr.value),
                                  ("optimizer", "optimizer", self.optimizer.value),
                                  ("val", "val_fraction", self.val.value / 100),
                                  ("augment", "augment", self.augment.value),
                                  ("seed", "seed", int(seed) if seed else None)):
            if key in t:
                changes[field] = value
        return replace(s, **changes).validate()

    def _on_epochs_changed(self, value=None) -> None:
        """A number of epochs replaces the time limit: say so on the time limit field."""
        self.time_limit.enabled = not self.epochs.value
        self.time_limit.tooltip = (TIME_LIMIT_HELP if not self.epochs.value else
                                   f"Not used: training runs {self.epochs.value} epoch(s) (Advanced)")

    def _user_changed(self, name: str) -> None:
        if not self._updating:
            self.touched.add(name)
            if name == "dims":
                self._suggest()

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Changes made by the form itself: not the user's, and no ``changed`` signal for each."""
        before, self._updating = self._updating, True
        try:
            yield
        finally:
            self._updating = before

    def _emit_changed(self, *args) -> None:
        if not self._updating:
            self.changed.emit()

    # ---------------------------------------------------------------- layer pickers
    def _image_choices(self, widget=None):
        return [(lay.name, lay) for lay in self.viewer.layers if isinstance(lay, Image) and not L.is_ours(lay)]

    def _labels_choices(self, widget=None):
        """Labels layers of the image's shape (all of them while no image is picked)."""
        image = self.image.value if hasattr(self, "image") else None
        return [(lay.name, lay) for lay in self.viewer.layers
                if isinstance(lay, Labels) and not L.is_ours(lay) and (image is None or L.fits(lay, image))]

    def _partner_choices(self, widget=None):
        """Other image layers of the image's shape (targets, references)."""
        image = self.image.value if hasattr(self, "image") else None
        return [(lay.name, lay) for lay in self.viewer.layers
                if isinstance(lay, Image) and not L.is_ours(lay) and image is not None
                and not L.same_layer(lay, image) and L.data_shape(lay) == L.data_shape(image)]

    def _class_choices(self, widget=None):
        return C.source_choices(self.viewer, self.annotations.value if hasattr(self, "annotations") else None)

    def _axes_choices(self, widget=None):
        return L.axes_choices(self.image.value if hasattr(self, "image") else None)

    def picks(self) -> tuple:
        """What is picked (layer keys), to tell whether anything the user sees changed."""
        return tuple(L.layer_key(v) if v is not None and not isinstance(v, str) else v
                     for v in (self.image.value, self.annotations.value, self.classes.value, self.target.value,
                               self.reference.value))

    def refresh_layers(self, event=None) -> None:
        """Re-list the layers (after napari added, removed, moved or renamed one) and fill empty pickers."""
        before = self.picks()
        with self._quiet():
            self.image.reset_choices()
            images = [c for c in self.image.choices if c is not None]
            if self.image.value is None and images:
                self.image.value = images[0]
            if self.picks()[0] != before[0]:
                self._on_image_changed()
            else:
                self._reset_pickers()
                self._refresh_classes()
        if self.picks() != before:
            self.changed.emit()

    def _on_image_changed(self, value=None) -> None:
        self._reset_pickers()
        P.follow_image(self)  # Annotations follow the image (its own 'X labels')
        with self._quiet():
            self.axes.reset_choices()
        self._suggest()

    def _reset_pickers(self) -> None:
        """Re-list the layers that go with the image; one that went away is replaced by a fitting one."""
        replaced = False
        with self._quiet():
            for w in (self.annotations, self.target, self.reference):
                before = w.value
                w.reset_choices()
                if not L.same_layer(before, w.value):
                    w.value = None  # magicgui falls back to the first choice: pick on purpose instead
                    replaced = replaced or w is self.annotations
        self._pick_annotations(repick=replaced)
        self._pick_partners()

    def _pick_annotations(self, repick: bool = False) -> None:
        """Fill Annotations with a layer that suits the task: masks for objects, scribbles for classes.

        ``repick`` (a new task) replaces a current layer that does not suit it. An instance-looking
        mask is never picked for a scribbles task: the user picks it on purpose, or paints scribbles.
        """
        task = self.task_info
        if not self.uses("annotations"):
            return
        candidates = P.suitable(self.viewer, self.image.value, self.annotations.choices)  # not another image's
        current = self.annotations.value
        ranked = L.rank_annotations(candidates, scribbles=task.wants_scribbles, current=current, repick=repick)
        if ranked is None:  # the current layer suits the task
            return
        ranked = P.own_first(self.image.value, ranked)
        with self._quiet():
            self.annotations.value = ranked[0] if ranked else None
        self._refresh_classes()

    def instance_looking(self, layer) -> tuple[int, float] | None:
        """The label statistics of ``layer`` when it looks like instance masks, else ``None``."""
        stats = L.label_stats(layer) if layer is not None else None
        return stats if L.looks_like_instances(stats) else None

    def _pick_partners(self) -> None:
        """Fill Reference / Target with an open image whose name says it is clean (e.g. '(clean reference)')."""
        for name in ("reference", "target"):
            w = getattr(self, name)
            if self.uses(name) and w.value is None:
                clean = [c for c in w.choices if c is not None and L.sounds_clean(c.name)]
                if clean:
                    with self._quiet():
                        w.value = clean[0]

    def _refresh_classes(self, value=None) -> None:
        """Re-list class sources; prefer a Points layer (the quickest way to mark a few objects)."""
        with self._quiet():
            self.classes.reset_choices()
            current, objects = self.classes.value, self.annotations.value
            features_usable = objects is not None and "class" in objects.features
            if current is None or L.same_layer(current, objects) or \
                    (isinstance(current, str) and not features_usable):
                points = [v for v in self.classes.choices if isinstance(v, Points)]
                self.classes.value = points[0] if points else C.FEATURES
