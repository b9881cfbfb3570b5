"""Segmentation tasks: semantic (from sparse scribbles) and instance (from dense masks)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries, relabel_sequential, watershed
from torch.nn import functional as F

from ..data.patches import IGNORE, PatchSampler, split_validation, val_mask
from ..errors import InputError
from ..metrics import instance_scores, iou_matrix, match_counts, semantic_scores
from .base import Problem, Task, check_task_config, require_labels


def unet_defaults(spatial_dims: int, device_type: str = "cpu") -> dict:
    """A U-Net that trains fast enough on a laptop CPU; wider where a GPU makes width cheap."""
    return {"depth": 3, "base_channels": 32 if device_type == "cuda" else 16}


def label_dtype(max_id: int) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32):
        if max_id <= np.iinfo(dt).max:
            return np.dtype(dt)
    return np.dtype(np.uint64)


class SemanticTask(Task):
    """Pixel classes from a few painted strokes; 0 means "not annotated" and is ignored."""

    name = "semantic"
    description = "Semantic segmentation from scribbles (classes 1..K, 0 = not annotated)"

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

    def loss(self, logits, target, meta):
        w = torch.tensor(meta["class_weights"], dtype=torch.float32, device=logits.device)
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
    """Instance ids ``(N, *spatial)`` -> classes 0 background, 1 interior, 2 boundary."""
    out = np.zeros(labels.shape, dtype=np.int64)
    for i in range(labels.shape[0]):
        lbl = labels[i]
        boundary = find_boundaries(lbl, mode="inner") & (lbl > 0)
        out[i][lbl > 0] = 1
        out[i][boundary] = 2
    return out


class InstanceTask(Task):
    """Separate objects (nuclei, cells) from dense instance masks.

    The network predicts background / interior / boundary; seeds are the connected
    interior regions, grown by watershed over the foreground.
    """

    name = "instance"
    description = "Instance segmentation from dense masks (0 = background, 1..n = objects)"
    instance_labels = True
    options = {"boundary_weight": (0.1, 20.0), "threshold": (0.05, 0.95), "min_size": (0, 1e9)}

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
        }
        return Problem(self, inputs, sampler, 3, meta, regions, labels if regions else None,
                       int((~held).sum()), int(held.sum()))

    def loss(self, logits, target, meta):
        w = torch.tensor([1.0, 1.0, meta["boundary_weight"]], device=logits.device)
        return F.cross_entropy(logits.float(), target, weight=w, ignore_index=IGNORE)

    def postprocess(self, outputs, meta):
        return probabilities_to_instances(outputs, meta.get("threshold", 0.5), meta.get("min_size", 10))

    def validate(self, problem, predictions):
        tp = fp = fn = 0
        s = 0.0
        for region, out in zip(problem.val_regions, predictions):
            truth = problem.val_truth[(region.sample, *region.box)]
            pred = self.postprocess(out, problem.meta)
            a, b, c, d = match_counts(iou_matrix(truth, pred), 0.5)
            tp, fp, fn, s = tp + a, fp + b, fn + c, s + d
        scores = instance_scores(tp, fp, fn, s)
        return {"f1@0.5": scores["f1"], "precision@0.5": scores["precision"], "recall@0.5": scores["recall"]}, scores["f1"]


def drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects with fewer than ``min_size`` pixels to 0."""
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    return np.where(small[labels], 0, labels) if small.any() else labels


def probabilities_to_instances(prob: np.ndarray, threshold: float = 0.5, min_size: float = 10) -> np.ndarray:
    """Seeded watershed: ``(3, *spatial)`` background/interior/boundary probabilities -> labels."""
    interior = prob[1]
    foreground = (prob[1] + prob[2]) > threshold
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
    labels, _, _ = relabel_sequential(labels)
    return labels.astype(label_dtype(int(labels.max())))
