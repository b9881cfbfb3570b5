"""Segmentation tasks: semantic (from sparse scribbles) and instance (from dense masks)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed
from torch.nn import functional as F

from ..data.patches import IGNORE, PatchSampler, split_validation, val_mask
from ..data.targets import ClassTargets, InstanceTargets, instance_classes
from ..errors import InputError
from ..metrics import instance_scores, iou_matrix, match_counts, semantic_scores
from ..settings.defaults import network_width
from .base import Problem, check_task_config, require_labels
from .calibration import (
    MIN_SIZE_GRID,
    THRESHOLD_GRID,
    calibration_regions,
    coordinate_search,
    matching_quality,
)
from .dense import DenseTask
from .sets import set_parts, set_patch

#: Context around a validation box, as the training loop grows it (``VAL_MARGIN`` in ``training/loop.py``).
VAL_MARGIN = 32

#: Objects touching the edge of a labelled array (the image, a block, a validation box) with fewer pixels
#: than this share of the median object are slivers of objects outside it: they are dropped from results,
#: and from the truth that validation scores them against (a score of 1.0 on a one-pixel sliver means nothing).
BORDER_FRAGMENT = 0.1

def unet_defaults(spatial_dims: int, device_type: str = "cpu") -> dict:
    """A U-Net that trains fast enough on a laptop CPU; wider where a GPU makes width cheap."""
    return {"depth": 3, "base_channels": network_width(device_type)}


def label_dtype(max_id: int) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_id <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


class SemanticTask(DenseTask):
    """Pixel classes from a few painted strokes; 0 means "not annotated" and is ignored."""

    name = "semantic"
    description = "Semantic segmentation from scribbles (classes 1..K, 0 = not annotated)"
    wants_scribbles = True
    supports_live = True

    def default_model_config(self, spatial_dims, device_type="cpu", model=None):
        return unet_defaults(spatial_dims, device_type) if model in (None, "unet", "unet-gru") else {}

    def make_problem(self, inputs, annotations, config, rng, divisor, extra=None):
        from ..data.patches import fit_patch

        labels = require_labels(annotations, self.name)
        present = np.unique(labels)
        present = present[present > 0]
        if present.size == 0:
            raise InputError("the annotation layer is empty: paint a few strokes of at least two classes (0 = not annotated)")
        if present.size < 2:
            raise InputError(
                f"only one class (id {present[0]}) is painted; paint at least two classes "
                "(e.g. 1 = background, 2 = cells), 0 stays 'not annotated'"
            )
        n_classes = int(present.max())
        if n_classes > 255:
            raise InputError(f"class ids go up to {n_classes}; semantic classes must be 1..255 (is this an instance mask?)")
        annotated = labels > 0
        regions = split_validation(annotated, config.val_fraction)
        held = val_mask(labels.shape, regions)
        targets = labels.astype(np.int64) - 1
        targets[~annotated | held] = IGNORE
        train_px = annotated & ~held
        counts = np.bincount(targets[targets >= 0].ravel(), minlength=n_classes).astype(np.float64)
        weights = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1.0)), 0.0)
        weights = weights / weights[counts > 0].mean()
        patch = fit_patch(config.patch_size, inputs.shape[2:], divisor)
        sampler = PatchSampler(inputs, targets, train_px, patch, rng, augment=config.augment, focus=0.9)
        meta = {
            "n_classes": n_classes,
            "class_names": [f"class {i}" for i in range(1, n_classes + 1)],
            "class_weights": [float(w) for w in weights],
            "classes_seen": [int(c) for c in present],
        }
        return Problem(self, inputs, sampler, n_classes, meta, regions, labels if regions else None,
                       int(train_px.sum()), int((annotated & held).sum()))

    def make_dataset_problem(self, ds, config, rng, divisor):
        values, counts = np.zeros(0, np.int64), np.zeros(0, np.int64)
        for i in range(len(ds)):
            stats = ds.label_stats(i)
            if stats is not None:
                values, counts = np.concatenate([values, stats.values]), np.concatenate([counts, stats.counts])
        keep = values > 0
        present, inverse = np.unique(values[keep], return_inverse=True)
        pixels = np.bincount(inverse, weights=counts[keep]) if present.size else np.zeros(0)
        if present.size == 0:
            raise InputError("no image has painted strokes: paint a few strokes of at least two classes "
                             "(0 = not annotated)")
        if present.size < 2:
            raise InputError(f"only one class (id {present[0]}) is painted in the whole set; paint at least two "
                             "classes (e.g. 1 = background, 2 = cells), 0 stays 'not annotated'")
        n_classes = int(present.max())
        if n_classes > 255:
            raise InputError(f"class ids go up to {n_classes}; semantic classes must be 1..255 (is this an "
                             "instance mask?)")
        full = np.zeros(n_classes)
        full[present - 1] = pixels
        weights = np.where(full > 0, 1.0 / np.sqrt(np.maximum(full, 1.0)), 0.0)
        weights = weights / weights[full > 0].mean()
        parts = set_parts(ds, config, rng, ClassTargets(), set_patch(ds, config, divisor), margin=VAL_MARGIN,
                          focus=0.9)
        meta = {"n_classes": n_classes, "class_names": [f"class {i}" for i in range(1, n_classes + 1)],
                "class_weights": [float(w) for w in weights], "classes_seen": [int(c) for c in present]}
        val_px = sum(int((parts.truths[(r.sample, *r.box)] > 0).sum()) for r in parts.regions)
        return Problem(self, None, parts.sampler, n_classes, meta, parts.regions, parts.truths,
                       parts.sampler.train_content, val_px, notices=parts.notices, val_inputs=parts.inputs)

    def loss(self, logits, target, meta):
        w = torch.tensor(meta["class_weights"], dtype=torch.float32, device=logits.device)
        if not bool((target != IGNORE).any()):  # a batch without a painted pixel: nothing to learn, not NaN
            return logits.float().sum() * 0.0
        return F.cross_entropy(logits.float(), target, weight=w, ignore_index=IGNORE)

    def postprocess(self, outputs, meta):
        return (outputs.argmax(axis=0) + 1).astype(label_dtype(outputs.shape[0]))

    def validate(self, problem, predictions):
        truths, preds = [], []
        for region, out in zip(problem.val_regions, predictions):
            truths.append(problem.val_truth[(region.sample, *region.box)].ravel())
            preds.append(self.postprocess(out, problem.meta).ravel())
        s = semantic_scores(np.concatenate(truths), np.concatenate(preds))
        return {"accuracy": s["accuracy"], "mean_iou": s["mean_iou"]}, s["mean_iou"]


def instance_targets(labels: np.ndarray) -> np.ndarray:
    """Instance ids ``(N, *spatial)`` -> classes 0 background, 1 interior, 2 boundary (one rule with the
    data sets' patch targets: :func:`~..data.targets.instance_classes`)."""
    out = np.zeros(labels.shape, dtype=np.int64)
    for i in range(labels.shape[0]):
        out[i] = instance_classes(labels[i])
    return out


class InstanceTask(DenseTask):
    """Separate objects (nuclei, cells) from dense instance masks.

    The network predicts background / interior / boundary; seeds are the connected
    interior regions, grown by watershed over the foreground.
    """

    name = "instance"
    description = "Instance segmentation from dense masks (0 = background, 1..n = objects)"
    instance_labels = True
    supports_live = True
    options = {"boundary_weight": (0.1, 20.0), "threshold": (0.05, 0.95), "min_size": (0, 1e9), "calibrate": (0, 1)}

    def default_model_config(self, spatial_dims, device_type="cpu", model=None):
        return unet_defaults(spatial_dims, device_type) if model in (None, "unet", "unet-gru") else {}

    def make_problem(self, inputs, annotations, config, rng, divisor, extra=None):
        from ..data.patches import fit_patch

        opts = check_task_config(dict(config.task_config), self.options)
        labels = require_labels(annotations, self.name)
        if not labels.any():
            raise InputError("the annotation layer has no objects: paint or load instance masks (0 = background, 1..n = objects)")
        regions = split_validation(labels > 0, config.val_fraction)
        held = val_mask(labels.shape, regions)
        targets = instance_targets(labels)
        targets[held] = IGNORE
        areas = np.concatenate([np.bincount(lbl.ravel())[1:] for lbl in labels])  # per sample: 2D objects in 2D
        areas = areas[areas > 0]
        median_area = float(np.median(areas))
        min_size = opts.get("min_size", max(4.0, 0.05 * median_area))
        patch = fit_patch(config.patch_size, inputs.shape[2:], divisor)
        sampler = PatchSampler(inputs, targets, (labels > 0) & ~held, patch, rng, augment=config.augment, focus=0.7)
        meta = {
            "class_names": ["background", "interior", "boundary"],
            "boundary_weight": opts.get("boundary_weight", 3.0),
            "threshold": opts.get("threshold", 0.5),
            "min_size": float(min_size),
            "median_area": median_area,
            "n_objects": int(areas.size),
            "border_fragment": BORDER_FRAGMENT,
            "calibrate": bool(opts.get("calibrate", 1.0) >= 0.5),
        }
        val_objects = sum(int(np.count_nonzero(np.unique(self._val_truth(labels, r, meta)))) for r in regions)
        return Problem(self, inputs, sampler, 3, meta, regions, labels,  # labels: validation and calibration
                       int((~held).sum()), int(held.sum()), val_size=val_objects, val_unit="objects")

    def make_dataset_problem(self, ds, config, rng, divisor):
        opts = check_task_config(dict(config.task_config), self.options)
        if not any(ds.annotated_pixels(i) for i in range(len(ds))):
            raise InputError("no image has annotated objects: give instance masks (0 = background, 1..n = objects)")
        areas = object_areas(ds)
        median_area = float(np.median(areas))
        parts = set_parts(ds, config, rng, InstanceTargets(), set_patch(ds, config, divisor), margin=VAL_MARGIN,
                          focus=0.7)
        meta = {
            "class_names": ["background", "interior", "boundary"],
            "boundary_weight": opts.get("boundary_weight", 3.0),
            "threshold": opts.get("threshold", 0.5),
            "min_size": float(opts.get("min_size", max(4.0, 0.05 * median_area))),
            "median_area": median_area,
            "n_objects": int(sum(int((s.values > 0).sum()) for s in map(ds.label_stats, range(len(ds))) if s)),
            "border_fragment": BORDER_FRAGMENT,
            "calibrate": bool(opts.get("calibrate", 1.0) >= 0.5),
        }
        val_objects = sum(int(np.count_nonzero(np.unique(self._val_truth(parts.truths, r, meta))))
                          for r in parts.regions)
        return Problem(self, None, parts.sampler, 3, meta, parts.regions, parts.truths, parts.sampler.train_area,
                       parts.held_pixels, val_size=val_objects, val_unit="objects", notices=parts.notices,
                       val_inputs=parts.inputs)

    @staticmethod
    def _val_truth(labels: np.ndarray, region, meta: dict) -> np.ndarray:
        """The true objects of a validation box, without the slivers of objects cut by its edge."""
        return drop_border_fragments(labels[(region.sample, *region.box)], border_min_size(meta))

    def loss(self, logits, target, meta):
        w = torch.tensor([1.0, 1.0, meta["boundary_weight"]], device=logits.device)
        return F.cross_entropy(logits.float(), target, weight=w, ignore_index=IGNORE)

    def postprocess(self, outputs, meta):
        return probabilities_to_instances(outputs, meta.get("threshold", 0.5), meta.get("min_size", 10),
                                          border_min_size(meta), meta.get("mask_threshold"))

    def postprocess_volume(self, outputs, meta):
        """``(3, Z, Y, X)`` outputs of a 2D model, slice by slice -> 3D objects: the seeded watershed runs on
        the stacked probabilities, so an object's slices share one id (not one id per slice).

        The size limits were learned on 2D areas: an object must span about two slices (twice the area
        limit in voxels) to be kept.
        """
        volume = dict(meta, min_size=2 * float(meta.get("min_size", 10)),
                      median_area=2 * float(meta.get("median_area", 0) or 0))
        return self.postprocess(outputs, volume)

    def calibration_regions(self, problem):
        return calibration_regions(problem) if problem.meta.get("calibrate", True) else []

    def calibrate(self, problem, regions, outputs, fixed=(), stop=None):
        """Seed and foreground thresholds and the smallest object kept that score best (F1@0.5 + mean AP)
        on ``regions``; options the user set (``fixed``) stay as they are."""
        meta = problem.meta
        truths = [self._val_truth(problem.val_truth, r, meta) for r in regions]
        median = float(meta["median_area"])
        grids = {"threshold": THRESHOLD_GRID, "mask_threshold": THRESHOLD_GRID,
                 "min_size": sorted({max(4.0, round(f * median, 1)) for f in MIN_SIZE_GRID} | {meta["min_size"]})}
        if "threshold" in fixed:
            grids.pop("threshold"), grids.pop("mask_threshold")
        if "min_size" in fixed:
            grids.pop("min_size")
        if not grids or not any(t.any() for t in truths):
            return {}
        start = {"threshold": meta["threshold"], "mask_threshold": meta.get("mask_threshold") or meta["threshold"],
                 "min_size": meta["min_size"]}
        start = {k: v for k, v in start.items() if k in grids}

        def score(settings):
            m = dict(meta, **settings)
            return matching_quality(truths, [self.postprocess(o, m) for o in outputs])

        tied = ("threshold", "mask_threshold") if "threshold" in grids else ()
        before = score(start)
        best, after = coordinate_search(score, start, grids, tied, stop=stop)
        n_objects = sum(int(np.count_nonzero(np.unique(t))) for t in truths)
        return {**best, "calibration": {"score": "f1@0.5 + mean AP 0.5:0.9", "before": round(before, 4),
                                        "after": round(after, 4), "objects": n_objects, "regions": len(regions)}}

    def validate(self, problem, predictions):
        tp = fp = fn = 0
        s = 0.0
        for region, out in zip(problem.val_regions, predictions):
            truth = self._val_truth(problem.val_truth, region, problem.meta)
            pred = self.postprocess(out, problem.meta)
            a, b, c, d = match_counts(iou_matrix(truth, pred), 0.5)
            tp, fp, fn, s = tp + a, fp + b, fn + c, s + d
        scores = instance_scores(tp, fp, fn, s)
        return {"f1@0.5": scores["f1"], "precision@0.5": scores["precision"], "recall@0.5": scores["recall"]}, scores["f1"]


def object_areas(ds, planes: int = 8, max_plane_pixels: int = 16 << 20) -> np.ndarray:
    """Pixel counts of the annotated objects of a data set, as the model sees them (per plane).

    One-plane images (and 3D models) take them from the annotation scan; images
    with several planes read up to ``planes`` annotated planes in all (a 2D model
    sees an object of a stack slice by slice), unless their planes are huge.
    """
    areas = []
    budget = planes
    for i in range(len(ds)):
        stats = ds.label_stats(i)
        if stats is None or not stats.n_annotated:
            continue
        lay = ds.layouts[i]
        if lay.n_samples > 1 and int(np.prod(lay.spatial_shape)) <= max_plane_pixels:
            full = tuple(slice(0, s) for s in lay.spatial_shape)
            for p in np.flatnonzero(stats.plane_counts())[:budget]:
                counts = np.bincount(ds.read_labels(i, int(p), full).ravel().astype(np.int64))[1:]
                areas.append(counts[counts > 0])
                budget -= 1
        else:
            areas.append(stats.counts[stats.values > 0])
    areas = np.concatenate(areas) if areas else np.zeros(0)
    return areas if areas.size else np.ones(1)


def border_min_size(meta: dict) -> float:
    """Fewest pixels an object touching the array's edge keeps (see :data:`BORDER_FRAGMENT`).

    The share is stored with the model, so a model file made before it was
    introduced keeps predicting exactly as it did (its meta has no share: 0).
    """
    share = float(meta.get("border_fragment", 0) or 0)
    if not share:
        return 0.0
    return max(float(meta.get("min_size", 0)), share * float(meta.get("median_area", 0) or 0))


def drop_border_fragments(labels: np.ndarray, min_size: float) -> np.ndarray:
    """Set objects that touch the array's edge and have fewer than ``min_size`` pixels to 0."""
    if min_size <= 1 or not labels.any():
        return labels
    edge = np.concatenate([np.take(labels, i, axis=d).ravel() for d in range(labels.ndim) for i in (0, -1)])
    touching = np.unique(edge)
    touching = touching[touching > 0]
    if not touching.size:
        return labels
    sizes = np.bincount(labels.ravel())
    fragments = touching[sizes[touching] < min_size]
    return np.where(np.isin(labels, fragments), 0, labels) if fragments.size else labels


def drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects with fewer than ``min_size`` pixels to 0."""
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    return np.where(small[labels], 0, labels) if small.any() else labels


def probabilities_to_instances(prob: np.ndarray, threshold: float = 0.5, min_size: float = 10,
                               border_min_size: float = 0, mask_threshold: float | None = None) -> np.ndarray:
    """Seeded watershed: ``(3, *spatial)`` background/interior/boundary probabilities -> labels.

    Seeds are the connected regions of interior probability > ``threshold``; they
    grow over the foreground, interior + boundary probability > ``mask_threshold``
    (``None``: the same ``threshold``). Objects smaller than ``min_size`` pixels are
    dropped, and those touching the array's edge with fewer than ``border_min_size``
    (slivers of objects outside).
    """
    interior = prob[1]
    foreground = (prob[1] + prob[2]) > (threshold if mask_threshold is None else mask_threshold)
    seeds, _ = ndi.label(interior > threshold)
    if min_size > 1 and seeds.max():
        seeds = drop_small(seeds, max(1, int(min_size * 0.25)))
    labels = watershed(-interior, markers=seeds, mask=foreground)
    # foreground blobs with no interior seed still are objects
    orphans, n_orphans = ndi.label(foreground & (labels == 0))
    if n_orphans:
        labels = np.where(orphans > 0, orphans + labels.max(), labels)
    if min_size > 1 and labels.max():
        labels = drop_small(labels, int(min_size))
    labels = drop_border_fragments(labels, border_min_size)
    labels, _, _ = relabel_sequential(labels)
    return labels.astype(label_dtype(int(labels.max())))
