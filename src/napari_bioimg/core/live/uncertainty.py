"""How unsure a model is: per pixel (an image to show over the data) and per object (a table column).

Inputs are class probabilities ``(K, *spatial)`` as the tasks' activations give them
(softmax over K classes; for instance segmentation the K = 3 classes background,
interior and boundary, so uncertainty there concentrates on object boundaries).
"""

from __future__ import annotations

import numpy as np


def entropy_map(probs: np.ndarray) -> np.ndarray:
    """Normalised entropy of the class probabilities, in [0, 1] (1 = all classes equally likely).

    Parameters
    ----------
    probs
        ``(K, *spatial)`` probabilities summing to 1 over axis 0 (K >= 2).
    """
    p = np.clip(np.asarray(probs, dtype=np.float32), 1e-7, 1.0)
    k = p.shape[0]
    if k < 2:
        return np.zeros(p.shape[1:], np.float32)
    h = -(p * np.log(p)).sum(axis=0)
    return (h / np.log(k)).astype(np.float32)


def margin_map(probs: np.ndarray) -> np.ndarray:
    """``1 - (p_top1 - p_top2)``: 1 where the two likeliest classes tie, 0 where one class is certain."""
    p = np.asarray(probs, dtype=np.float32)
    if p.shape[0] < 2:
        return np.zeros(p.shape[1:], np.float32)
    top2 = np.partition(p, p.shape[0] - 2, axis=0)[-2:]
    return (1.0 - (top2[1] - top2[0])).astype(np.float32)


def object_confidence(labels: np.ndarray, probs: np.ndarray) -> dict[int, float]:
    """Mean top-class probability inside each object of ``labels`` (``{id: confidence}``, 0 excluded).

    For a semantic result ``labels`` is the class image (each class is one "object");
    for instances it is the instance label image.
    """
    labels = np.asarray(labels)
    top = np.asarray(probs, dtype=np.float32).max(axis=0)
    if labels.shape != top.shape:
        raise ValueError(f"labels {labels.shape} and probabilities {top.shape[1:]} cover different pixels")
    ids = labels.ravel()
    inside = ids > 0
    if not inside.any():
        return {}
    ids = ids[inside].astype(np.int64)
    sums = np.bincount(ids, weights=top.ravel()[inside])
    counts = np.bincount(ids)
    present = np.flatnonzero(counts)
    return {int(i): float(sums[i] / counts[i]) for i in present}
