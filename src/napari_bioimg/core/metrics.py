"""Quality metrics: instance matching (StarDist definitions), semantic overlap, classification, PSNR and SSIM."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from .errors import InputError

THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
#: Validation sets smaller than this (by unit) give scores that say little; see :func:`validation_caveat`.
SMALL_VALIDATION = {"objects": 20, "frames": 10, "pixels": 1000}


def validation_caveat(size: int | None, unit: str | None) -> str | None:
    """A warning to show beside validation scores computed on too few items (``None`` when there are enough).

    ``size`` and ``unit`` are those of :class:`~.events.ValidationDone` and
    :class:`~.formats.checkpoint.ModelCard`: ``"objects"``, ``"frames"`` or ``"pixels"``.
    """
    if size is None or unit not in SMALL_VALIDATION or size >= SMALL_VALIDATION[unit]:
        return None
    return (f"validated on only {size} {unit}: a rough guide, not a measurement; hold more annotations apart, "
            "or score the model on annotated images of your own")


def _relabel(x: np.ndarray) -> tuple[np.ndarray, int]:
    ids, inverse = np.unique(x, return_inverse=True)
    if ids[0] != 0:  # no background present: shift so 0 stays background
        inverse = inverse + 1
        return inverse.reshape(x.shape), len(ids)
    return inverse.reshape(x.shape), len(ids) - 1


def iou_matrix(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """IoU between every true object (rows) and predicted object (columns), ids relabelled 1..n."""
    if truth.shape != pred.shape:
        raise InputError(f"prediction shape {pred.shape} differs from ground truth {truth.shape}")
    t, nt = _relabel(np.asarray(truth))
    p, np_ = _relabel(np.asarray(pred))
    pairs = t.ravel().astype(np.int64) * (np_ + 1) + p.ravel()
    ids, counts = np.unique(pairs, return_counts=True)
    overlap = np.zeros((nt + 1, np_ + 1), dtype=np.int64)
    overlap[ids // (np_ + 1), ids % (np_ + 1)] = counts
    area_t = overlap.sum(axis=1, keepdims=True)
    area_p = overlap.sum(axis=0, keepdims=True)
    union = area_t + area_p - overlap
    iou = np.divide(overlap, union, out=np.zeros(overlap.shape, dtype=np.float64), where=union > 0)
    return iou[1:, 1:]


def match_counts(iou: np.ndarray, threshold: float) -> tuple[int, int, int, float]:
    """One-to-one matching at IoU > threshold: (tp, fp, fn, sum of matched IoU)."""
    nt, np_ = iou.shape
    if nt == 0 or np_ == 0:
        return 0, np_, nt, 0.0
    ok = iou > threshold
    if threshold >= 0.5:  # matches are unique above 0.5: no assignment needed
        tp = int(ok.sum())
        return tp, np_ - tp, nt - tp, float(iou[ok].sum())
    cost = -(iou * ok)
    rows, cols = linear_sum_assignment(cost)
    good = ok[rows, cols]
    tp = int(good.sum())
    return tp, np_ - tp, nt - tp, float(iou[rows, cols][good].sum())


def instance_scores(tp: int, fp: int, fn: int, iou_sum: float) -> dict[str, float]:
    def ratio(a, b):
        return float(a / b) if b else 0.0

    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "ap": ratio(tp, tp + fp + fn),
        "mean_matched_iou": ratio(iou_sum, tp),
    }


def matching(truth: np.ndarray, pred: np.ndarray, thresholds=THRESHOLDS) -> dict:
    """Instance segmentation quality at several IoU thresholds.

    Returns ``{"n_true", "n_pred", "thresholds": {"0.5": {...}, ...}}`` where each
    entry has tp, fp, fn, precision, recall, f1, ap (= TP/(TP+FP+FN), the "AP" of the
    StarDist and cellpose papers) and mean_matched_iou.
    """
    iou = iou_matrix(truth, pred)
    return {
        "n_true": int(iou.shape[0]),
        "n_pred": int(iou.shape[1]),
        "thresholds": {f"{t:g}": instance_scores(*match_counts(iou, t)) for t in thresholds},
    }


def matching_stack(truths, preds, thresholds=THRESHOLDS) -> dict:
    """Matching pooled over several images (counts summed, then ratios)."""
    totals = {f"{t:g}": [0, 0, 0, 0.0] for t in thresholds}
    n_true = n_pred = 0
    for truth, pred in zip(truths, preds):
        iou = iou_matrix(truth, pred)
        n_true += iou.shape[0]
        n_pred += iou.shape[1]
        for t in thresholds:
            c = match_counts(iou, t)
            acc = totals[f"{t:g}"]
            for i in range(4):
                acc[i] += c[i]
    return {"n_true": n_true, "n_pred": n_pred,
            "thresholds": {k: instance_scores(*v) for k, v in totals.items()}}


def semantic_scores(truth: np.ndarray, pred: np.ndarray, ignore_zero: bool = True) -> dict:
    """Per-class IoU and Dice, overall accuracy, mean IoU.

    With ``ignore_zero`` (the default, matching scribble annotations) pixels whose
    truth is 0 are not scored.
    """
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    if truth.shape != pred.shape:
        raise InputError(f"prediction shape {pred.shape} differs from ground truth {truth.shape}")
    mask = truth != 0 if ignore_zero else np.ones(truth.shape, dtype=bool)
    t = truth[mask].astype(np.int64)
    p = pred[mask].astype(np.int64)
    if t.size == 0:
        raise InputError("the ground truth has no annotated pixels to score (all 0)")
    classes = np.union1d(np.unique(t), np.unique(p))
    per_class = {}
    for c in classes:
        tc, pc = t == c, p == c
        inter = int(np.count_nonzero(tc & pc))
        union = int(np.count_nonzero(tc | pc))
        denom = int(tc.sum() + pc.sum())
        per_class[str(int(c))] = {
            "iou": inter / union if union else 0.0,
            "dice": 2 * inter / denom if denom else 0.0,
            "n_true": int(tc.sum()),
        }
    present = [v["iou"] for v in per_class.values() if v["n_true"] > 0]
    return {
        "accuracy": float(np.mean(t == p)),
        "mean_iou": float(np.mean(present)) if present else 0.0,
        "n_pixels": int(t.size),
        "per_class": per_class,
    }


def confusion_matrix(truth, pred, classes=None) -> tuple[np.ndarray, list]:
    """Counts ``(K, K)``: row = true class, column = predicted class, in the order of ``classes``.

    ``classes`` defaults to the sorted union of the values seen. Values are compared
    as given (use the same type, e.g. all strings, on both sides).
    """
    truth, pred = list(truth), list(pred)
    if len(truth) != len(pred):
        raise InputError(f"{len(truth)} true classes but {len(pred)} predictions")
    if classes is None:
        classes = sorted(set(truth) | set(pred), key=lambda v: (isinstance(v, str), v))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(v) for v in truth + pred if v not in index})
    if unknown:
        raise InputError(f"class value(s) {', '.join(unknown[:5])} are not among the known classes")
    cm = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(cm, ([index[t] for t in truth], [index[p] for p in pred]), 1)
    return cm, list(classes)


def classification_scores(truth, pred, classes=None) -> dict:
    """Accuracy, balanced accuracy, per-class precision / recall / F1 and the confusion matrix.

    Returns
    -------
    dict
        ``n``, ``accuracy``, ``balanced_accuracy`` (mean recall over the classes
        present in the truth), ``macro_f1`` (same classes), ``per_class``
        (``{class: {"precision", "recall", "f1", "support"}}``), ``classes`` and
        ``confusion_matrix`` (rows = truth, columns = prediction, as lists).
    """
    cm, classes = confusion_matrix(truth, pred, classes)
    n = int(cm.sum())
    if n == 0:
        raise InputError("nothing to score: no objects with both a true and a predicted class")
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    return {
        "n": n,
        "accuracy": float(tp.sum() / n),
        "balanced_accuracy": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "per_class": {str(c): {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                               "support": int(support[i])} for i, c in enumerate(classes)},
        "classes": [int(c) if isinstance(c, (int, np.integer)) else str(c) for c in classes],
        "confusion_matrix": cm.tolist(),
    }


def _paired(pred, truth, data_range: float | None, what: str):
    """Both images as float64 with the same shape, the mask of pixels finite in both, and the data range."""
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape:
        raise InputError(f"prediction shape {pred.shape} differs from the reference {truth.shape}")
    ok = np.isfinite(pred) & np.isfinite(truth)
    if not ok.any():
        raise InputError("no pixel is finite in both the prediction and the reference")
    if data_range is None:
        data_range = float(truth[ok].max() - truth[ok].min())
    if not data_range > 0:
        raise InputError(f"the reference image is constant: {what} needs a reference with some contrast")
    return pred, truth, ok, data_range


def psnr(pred: np.ndarray, truth: np.ndarray, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(range^2 / MSE)``, over pixels finite in both.

    ``data_range`` defaults to the range (max - min) of ``truth``, the convention of
    the denoising literature; ``inf`` for identical images.
    """
    pred, truth, ok, data_range = _paired(pred, truth, data_range, "PSNR")
    mse = float(np.mean((pred[ok] - truth[ok]) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range**2 / mse))


def ssim(pred: np.ndarray, truth: np.ndarray, data_range: float | None = None, channel_axis: int | None = None,
         frames: bool = False) -> float:
    """Structural similarity (scikit-image, uniform 7-pixel window), data range as in :func:`psnr`.

    ``frames`` scores each slice along the first axis separately (a T or S stack)
    and averages. Non-finite pixels are set to the reference's value in both images
    so they neither help nor hurt much.
    """
    from skimage.metrics import structural_similarity

    pred, truth, ok, data_range = _paired(pred, truth, data_range, "SSIM")
    if not ok.all():
        fill = float(np.median(truth[np.isfinite(truth)])) if np.isfinite(truth).any() else 0.0
        truth = np.where(np.isfinite(truth), truth, fill)
        pred = np.where(ok, pred, truth)
    if frames and pred.ndim >= 3:
        axis = None if channel_axis is None else channel_axis - 1
        return float(np.mean([ssim(p, t, data_range, axis) for p, t in zip(pred, truth)]))
    spatial = [s for i, s in enumerate(pred.shape) if channel_axis is None or i != channel_axis % pred.ndim]
    win = min(7, min(spatial))
    win -= 1 - win % 2  # odd
    if win < 3:
        raise InputError(f"the image is too small for SSIM (shape {pred.shape}); it needs at least 3 pixels per axis")
    return float(structural_similarity(truth, pred, data_range=data_range, channel_axis=channel_axis,
                                       win_size=win))


def image_scores(pred: np.ndarray, truth: np.ndarray, axes: str | None = None) -> dict:
    """PSNR, SSIM, MSE and MAE of a restored image against a clean reference.

    ``axes`` (e.g. ``"TYX"``, ``"YXC"``) makes SSIM frame-wise along a leading T/S
    axis and per channel along C; without it every axis is treated as spatial.
    """
    pred = np.asarray(pred)
    truth = np.asarray(truth)
    if pred.shape != truth.shape:
        raise InputError(f"prediction shape {pred.shape} differs from the reference {truth.shape}")
    axes = (axes or "").upper()
    if axes and len(axes) != pred.ndim:
        raise InputError(f"axes {axes!r} name {len(axes)} axes but the images have {pred.ndim}")
    channel_axis = axes.index("C") if "C" in axes else None
    frames = bool(axes) and axes[0] in "TS"
    t = truth.astype(np.float64)
    ok = np.isfinite(t) & np.isfinite(pred.astype(np.float64))
    data_range = float(t[ok].max() - t[ok].min()) if ok.any() else 0.0
    diff = pred.astype(np.float64)[ok] - t[ok]
    return {
        "psnr": psnr(pred, truth, data_range),
        "ssim": ssim(pred, truth, data_range, channel_axis, frames),
        "mse": float(np.mean(diff**2)),
        "mae": float(np.mean(np.abs(diff))),
        "data_range": data_range,
        "n_pixels": int(ok.sum()),
        "n_ignored": int(ok.size - ok.sum()),
    }
