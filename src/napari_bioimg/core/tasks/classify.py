"""Classification tasks: a class for every object (``classify``) or every frame (``classify-image``).

Objects: the network sees a fixed-size crop around each object (its bounding-box
centre) with the object's mask as an extra channel, so it knows which object of a
crowded crop is meant. Frames: the network sees the whole frame, resized. A few
items carry a class; a stratified part of them is held apart for validation, and
the report (accuracy, per-class precision / recall / F1, confusion matrix) is
computed on those.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from ..data.annotations import (
    FRAME_COLUMNS,
    ID_COLUMNS,
    ClassAnnotations,
    as_class_annotations,
    check_against_objects,
    unify_class_values,
)
from ..data.objects import (
    ObjectSampler,
    choose_crop,
    measure_objects,
    object_crops,
    paint_classes,
    resize,
    stratified_split,
)
from ..errors import InputError
from ..events import PredictProgress
from ..metrics import classification_scores
from ..settings.defaults import network_width
from .base import Problem, check_task_config, require_labels
from .items import ItemTask

MAX_CROP = {2: (48, 48), 3: (24, 48, 48)}
"""Largest network crop; bigger objects are cut wider and shrunk to fit (enough for shape and texture)."""
MAX_FRAME = 96
CHUNK = 256
PREDICT_BATCH = 64
"""Crops per forward pass when predicting, unless the caller gives a number (at least 8)."""


@dataclass
class ClassPrediction:
    """Per-item predictions: object ids (or frame numbers), classes and probabilities."""

    ids: np.ndarray
    index: np.ndarray
    """Class index (0..K-1) per item."""
    probabilities: np.ndarray
    """``(M, K)`` softmax probabilities."""
    class_names: list
    class_values: list[int]
    """Label value of each class in class images."""
    id_name: str = "label_id"
    class_image: np.ndarray | None = None
    """The objects layer with each object set to its class value (on request)."""

    @property
    def classes(self) -> list:
        return [self.class_names[i] for i in self.index]

    @property
    def probability(self) -> np.ndarray:
        """Probability of the predicted class per item."""
        return self.probabilities[np.arange(len(self.index)), self.index] if len(self.index) else np.zeros(0)

    def table(self) -> dict[str, list]:
        """Columns ``{id_name, "class", "probability"}`` for a CSV or a layer's ``features``."""
        return {self.id_name: [int(i) for i in self.ids], "class": self.classes,
                "probability": [round(float(p), 4) for p in self.probability]}


@dataclass
class ClassifyProblem(Problem):
    items: object = None
    val_x: np.ndarray | None = None
    val_y: np.ndarray | None = None
    val_ids: list[int] = field(default_factory=list)


def class_values(names: list) -> list[int]:
    """Whole-number class names >= 1 keep their number in label images; others become 1..K."""
    if all(isinstance(n, int) and 1 <= n < 2**31 for n in names):
        return [int(n) for n in names]
    return list(range(1, len(names) + 1))


def label_dtype_for(values) -> np.dtype:
    top = max(values) if len(values) else 0
    return np.dtype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32)


class ObjectItems:
    """The objects of a label image as classification items."""

    mask = True

    def __init__(self, inputs: np.ndarray, labels: np.ndarray):
        self.inputs, self.labels = inputs, labels
        self.table = measure_objects(labels)
        self.ids = self.table.ids
        self.size: tuple[int, ...] = ()
        self.zoom = 1.0

    def fit_size(self, requested, spatial_dims: int) -> None:
        if requested is not None:
            req = (requested,) * spatial_dims if isinstance(requested, int) else tuple(requested)
            if len(req) == 1:
                req = req * spatial_dims
            if len(req) != spatial_dims:
                raise InputError(f"crop size {requested} has {len(req)} values but the objects are {spatial_dims}D")
            self.size, self.zoom = tuple(int(r) for r in req), 1.0
        else:
            self.size, self.zoom = choose_crop(self.table.extent, MAX_CROP[spatial_dims])

    def crops(self, rows, margin: int = 0) -> np.ndarray:
        size = tuple(s + 2 * margin for s in self.size)
        return object_crops(self.inputs, self.labels, self.table, rows, size, self.zoom, mask=True)

    def rows_in_sample(self, n: int) -> np.ndarray:
        present = np.unique(self.labels[n])
        return np.flatnonzero(np.isin(self.ids, present[present > 0]))

    def paint(self, n: int, rows, values) -> np.ndarray:
        return paint_classes(self.labels[n], self.ids[rows], values, label_dtype_for(values))


class FrameItems:
    """Whole frames (samples along the non-spatial axes) as classification items."""

    mask = False

    def __init__(self, inputs: np.ndarray):
        self.inputs = inputs
        self.ids = np.arange(inputs.shape[0], dtype=np.int64)
        self.size = ()
        self.zoom = 1.0

    def fit_size(self, requested, spatial_dims: int) -> None:
        spatial = self.inputs.shape[2:]
        if requested is not None:
            req = (requested,) * spatial_dims if isinstance(requested, int) else tuple(requested)
            self.size = tuple(int(r) for r in (req * spatial_dims if len(req) == 1 else req))
        else:
            scale = min(1.0, MAX_FRAME / max(spatial))
            self.size = tuple(max(8, int(round(s * scale))) for s in spatial)

    def crops(self, rows, margin: int = 0) -> np.ndarray:
        x = resize(self.inputs[np.asarray(rows, dtype=np.int64)].astype(np.float32), self.size)
        if margin:
            pad = [(0, 0), (0, 0)] + [(margin, margin)] * (x.ndim - 2)
            x = np.pad(x, pad, mode="reflect" if min(self.size) > margin else "edge")
        return x

    def rows_in_sample(self, n: int) -> np.ndarray:
        return np.array([n], dtype=np.int64)

    def paint(self, n: int, rows, values) -> np.ndarray:
        return np.full(self.inputs.shape[2:], values[0], dtype=label_dtype_for(values))


def with_tta(forward):
    """Average ``forward`` over flips (and 90-degree turns of square crops) in YX: the
    class does not depend on orientation, and averaging steadies the probabilities."""

    def averaged(x: torch.Tensor) -> torch.Tensor:
        dims = (x.ndim - 2, x.ndim - 1)
        turns = range(4) if x.shape[-1] == x.shape[-2] else (0, 2)
        outs = []
        for k in turns:
            xr = torch.rot90(x, k, dims) if k else x
            outs += [forward(xr), forward(xr.flip(x.ndim - 1))]
        return torch.stack(outs).mean(dim=0)

    return averaged


def run_batches(forward, x: np.ndarray, batch_size: int = 64, tta: bool = False) -> np.ndarray:
    """Activated outputs of ``forward`` over ``x`` in batches, as numpy ``(M, K)``."""
    fn = with_tta(forward) if tta else forward
    outs = [fn(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size]))).float().cpu().numpy()
            for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


class ClassifyTask(ItemTask):
    """A class for every object of a label image, learnt from a few annotated objects."""

    name = "classify"
    description = "Object classification: a class for every object, from a few annotated objects"
    output_kind = "labels"
    inputs = ("image", "objects", "classes")
    supports_live = True
    classifies_objects = True
    default_batch_size = 32
    id_name = "label_id"
    id_columns = ID_COLUMNS
    unit = "objects"
    options = {"intensity_aug": (0.0, 1.0), "jitter": (0, 32), "label_smoothing": (0.0, 0.5), "tta": (0, 1)}
    """``intensity_aug``: gain/offset strength (default 0: per-image normalisation already copes with
    exposure, and brightness is often what tells classes apart); ``jitter``: random shift in pixels;
    ``tta``: average predictions over flips and turns (default 1)."""

    def default_model_config(self, spatial_dims, device_type="cpu", model=None):
        return {"depth": 4 if spatial_dims == 2 else 3, "base_channels": network_width(device_type)}

    def make_items(self, inputs: np.ndarray, annotations):
        labels = require_labels(annotations, self.name)
        if not labels.any():
            raise InputError("the objects layer is empty (all 0): segment or load objects before classifying them")
        return ObjectItems(inputs, labels)

    def annotations(self, extra: dict | None) -> ClassAnnotations:
        return as_class_annotations((extra or {}).get("classes"), self.id_columns)

    def make_problem(self, inputs, annotations, config, rng, divisor, extra=None):
        opts = check_task_config(dict(config.task_config), self.options)
        items = self.make_items(inputs, annotations)
        what = "objects layer" if items.mask else f"image ({len(items.ids)} frames, numbered from 0)"
        ann = check_against_objects(self.annotations(extra), items.ids, what)
        notices = list(ann.warnings)
        if not ann.classes:
            raise InputError(f"no annotated {self.unit} to learn from: give a class to a few {self.unit} "
                             "of each class (ids must exist in the " + what + ")")
        ids = np.array(sorted(ann.classes), dtype=np.int64)
        values = unify_class_values([ann.classes[int(i)] for i in ids])
        names = sorted(set(values))
        if len(names) < 2:
            raise InputError(f"only one class ({names[0]!r}) is annotated; give classes to {self.unit} of at least "
                             "two classes")
        y = np.array([names.index(v) for v in values], dtype=np.int64)
        counts = np.bincount(y, minlength=len(names))
        lonely = [str(names[k]) for k in np.flatnonzero(counts == 1)]
        if lonely:
            notices.append(f"class(es) {', '.join(lonely)} have a single annotated example: used for training only "
                           "(none left to validate); annotate a few more for a reliable model and report")
        train_i, val_i = stratified_split(y, config.val_fraction, rng)
        if config.val_fraction > 0 and not len(val_i):
            notices.append("too few annotated items to hold any apart (need 3 per class): no validation report, "
                           "the last model is kept")
        spatial_dims = inputs.ndim - 2
        items.fit_size(config.patch_size, spatial_dims)
        jitter = int(opts.get("jitter", max(2, round(min(items.size[-2:]) / 10))))
        rows = np.searchsorted(items.ids, ids)
        train_x = items.crops(rows[train_i], margin=jitter)
        val_x = items.crops(rows[val_i]) if len(val_i) else None
        train_counts = np.bincount(y[train_i], minlength=len(names)).astype(np.float64)
        balance = np.where(train_counts > 0, 1.0 / np.sqrt(np.maximum(train_counts, 1)), 0.0)
        weights = balance / balance[train_counts > 0].mean()
        sampler = ObjectSampler(train_x, y[train_i], items.size, rng, augment=config.augment,
                                image_channels=inputs.shape[1], weights=balance[y[train_i]],
                                intensity=opts.get("intensity_aug", 0.0))
        meta = {
            "class_names": names,
            "class_values": class_values(names),
            "class_counts": [int(c) for c in counts],
            "class_weights": [float(w) for w in weights],
            "crop_size": list(items.size),
            "zoom": float(items.zoom),
            "image_channels": int(inputs.shape[1]),
            "mask_channel": items.mask,
            "label_smoothing": float(opts.get("label_smoothing", 0.0)),
            "tta": bool(opts.get("tta", 1)),
            "n_train": int(len(train_i)),
            "n_val": int(len(val_i)),
            "val_ids": [int(i) for i in ids[val_i]],
            "id_name": self.id_name,
        }
        return ClassifyProblem(
            self, inputs, sampler, len(names), meta, n_train_pixels=len(train_i), n_val_pixels=len(val_i),
            in_channels=inputs.shape[1] + int(items.mask), unit=self.unit, notices=notices, items=items,
            val_x=val_x, val_y=y[val_i] if len(val_i) else None, val_ids=[int(i) for i in ids[val_i]])

    def loss(self, logits, target, meta):
        w = torch.tensor(meta["class_weights"], dtype=torch.float32, device=logits.device)
        return F.cross_entropy(logits.float(), target, weight=w, label_smoothing=meta.get("label_smoothing", 0.0))

    def postprocess(self, outputs, meta):
        raise InputError("classification predicts per object, not per pixel; use predict() with the objects")

    def validate(self, problem, predictions):
        raise NotImplementedError("classification validates with validate_direct")

    def validate_direct(self, problem, forward):
        if problem.val_x is None:
            return None
        probs = run_batches(forward, problem.val_x, tta=problem.meta["tta"])
        pred = probs.argmax(axis=1)
        names = problem.meta["class_names"]
        report = classification_scores([names[i] for i in problem.val_y], [names[i] for i in pred], names)
        true_p = probs[np.arange(len(pred)), problem.val_y]
        loss = float(-np.mean(np.log(np.clip(true_p, 1e-7, 1.0))))
        report.update(ids=list(problem.val_ids), predicted=[names[i] for i in pred], loss=loss)
        metrics = {"accuracy": report["accuracy"], "balanced_accuracy": report["balanced_accuracy"],
                   "macro_f1": report["macro_f1"], "loss": loss}
        # balanced accuracy decides; the loss only breaks ties (small validation sets tie often)
        return metrics, report["balanced_accuracy"] - 1e-4 * min(loss, 10.0), report

    def preview_direct(self, problem, forward, sample):
        items = problem.items
        rows = items.rows_in_sample(sample)
        values = problem.meta["class_values"]
        if not len(rows):
            return items.paint(sample, rows, values)
        probs = np.concatenate([run_batches(forward, items.crops(rows[i:i + CHUNK]))
                                for i in range(0, len(rows), CHUNK)])
        return items.paint(sample, rows, [values[k] for k in probs.argmax(axis=1)])

    def predict_direct(self, loaded, inp, *, labels=None, batch_size=None, control=None, amp=True, class_image=False,
                       tta=False):
        from ..runtime.device import autocast

        meta = loaded.meta
        layout = inp.layout
        items = self.predict_items(inp.x, labels, layout)
        items.size, items.zoom = tuple(meta["crop_size"]), float(meta["zoom"])
        model = loaded.model.eval()

        @torch.no_grad()
        def forward(x):
            with autocast(loaded.device, amp):
                return torch.softmax(model(x.to(loaded.device)).float(), dim=1)

        n = len(items.ids)
        probs = []
        for start in range(0, n, CHUNK):
            if control is not None and control.stop_requested:
                return None
            rows = np.arange(start, min(n, start + CHUNK))
            probs.append(run_batches(forward, items.crops(rows), max(8, batch_size or PREDICT_BATCH),
                                     tta=tta or meta.get("tta", False)))
            yield PredictProgress(int(rows[-1]) + 1, n, self.unit)
        probs = np.concatenate(probs)
        index = probs.argmax(axis=1)
        values = [int(v) for v in meta["class_values"]]
        result = ClassPrediction(items.ids, index, probs, list(meta["class_names"]), values, self.id_name)
        if class_image:
            result.class_image = self.class_image(items, labels, layout, [values[k] for k in index])
        return result

    def predict_items(self, xn, labels, layout):
        if labels is None:
            raise InputError("classifying objects needs their label image (the objects layer, or --labels FILE)")
        lbl = require_labels(np.asarray(labels), self.name)
        items = ObjectItems(xn, layout.labels_to_canonical(lbl))
        if not len(items.ids):
            raise InputError("the objects layer is empty (all 0): there is nothing to classify")
        return items

    def class_image(self, items, labels, layout, values) -> np.ndarray:
        return paint_classes(np.asarray(labels), items.ids, values, label_dtype_for(values))


class ImageClassifyTask(ClassifyTask):
    """A class for every frame of a stack ``(N, Y, X[, C])``, learnt from a few annotated frames."""

    name = "classify-image"
    description = "Image classification: a class for every frame of a stack, from a few annotated frames"
    inputs = ("image", "classes")
    needs_annotations = False
    supports_live = False
    classifies_objects = False
    default_spatial_dims = 2
    id_name = "frame"
    id_columns = FRAME_COLUMNS
    unit = "frames"

    def make_items(self, inputs, annotations):
        if inputs.shape[0] < 2:
            raise InputError("image classification needs a stack of several frames (N, Y, X[, C]); this image has one")
        return FrameItems(inputs)

    def predict_items(self, xn, labels, layout):
        return FrameItems(xn)

    def class_image(self, items, labels, layout, values) -> np.ndarray:
        frames = np.stack([np.full(layout.spatial_shape, v) for v in values])
        return layout.from_canonical(frames.astype(label_dtype_for(values)))
