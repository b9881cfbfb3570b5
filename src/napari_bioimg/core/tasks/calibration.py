"""Post-processing settings chosen after training, on annotated data, and stored with the model.

Some results depend on settings the loss never sees: the probability above which a pixel seeds an object,
the one above which it belongs to one, the smallest object kept. Their best values differ from data set to
data set and shift as training goes on (a short CPU run gives wider, less confident probability maps than a
long one), so a fixed 0.5 loses a lot. When training ends the trainer runs the chosen weights on the regions
a task names (:meth:`~.base.Task.calibration_regions`: the held-apart validation regions and, within a pixel
budget, the annotated training samples), and the task's :meth:`~.base.Task.calibrate` picks the settings that
score best there; they go into the model's task meta, which every prediction path reads.

The search is a coordinate search over small grids (a tied pass first, then one setting at a time), with
every evaluated setting cached: a few dozen post-processing runs, not the full product of the grids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..data.patches import ValRegion
from ..metrics import THRESHOLDS, iou_matrix, match_counts

#: Pixels (2D) or voxels (3D) of training samples added to the validation regions for calibration (3D: a 3D
#: watershed per setting tried; 1.5M voxels took ~40 s after the time limit on a loaded 2-core CPU).
CALIBRATION_PIXELS = {2: 2_000_000, 3: 400_000}
#: Interior (seed) and foreground probability thresholds tried.
THRESHOLD_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Smallest object kept, as a share of the training objects' median size.
MIN_SIZE_GRID = (0.05, 0.15, 0.3, 0.5)


def matching_quality(truths: Sequence[np.ndarray], preds: Sequence[np.ndarray]) -> float:
    """F1 at IoU 0.5 plus the mean AP over IoU 0.5-0.9, counts pooled over the pairs.

    F1@0.5 rewards finding each object once; the mean AP rewards outlines that fit.
    """
    c = np.zeros((len(THRESHOLDS), 3))
    for truth, pred in zip(truths, preds):
        iou = iou_matrix(truth, pred)
        for i, tau in enumerate(THRESHOLDS):
            c[i] += match_counts(iou, tau)[:3]
    tp, fp, fn = c[:, 0], c[:, 1], c[:, 2]
    f1 = 2 * tp[0] / max(2 * tp[0] + fp[0] + fn[0], 1)
    ap = tp / np.maximum(tp + fp + fn, 1)
    return float(f1 + ap.mean())


def coordinate_search(score: Callable[[dict], float], start: dict[str, Any], grids: dict[str, Sequence],
                      tied: tuple[str, ...] = (), passes: int = 2, stop: Callable[[], bool] | None = None
                      ) -> tuple[dict[str, Any], float]:
    """The best settings found from ``start``: first the ``tied`` settings moved together over the grid of the
    first of them, then each setting alone over its grid, repeated while anything improves. Ties keep the
    earlier setting (the start wins a tie). Once ``stop()`` is true no new setting is tried: the best so far
    is returned."""
    cache: dict[tuple, float] = {}

    def value(s: dict) -> float:
        key = tuple(sorted(s.items()))
        if key not in cache:
            cache[key] = score(s)
        return cache[key]

    best, best_value = dict(start), value(start)

    def consider(candidate: dict) -> bool:
        nonlocal best, best_value
        if stop is not None and tuple(sorted(candidate.items())) not in cache and stop():
            return False
        v = value(candidate)
        if v > best_value + 1e-9:
            best, best_value = candidate, v
            return True
        return False

    if tied:
        for t in grids[tied[0]]:
            consider(dict(best, **{name: t for name in tied}))
    for _ in range(passes):
        changed = False
        for name, grid in grids.items():
            for v in grid:
                changed |= consider(dict(best, **{name: v}))
        if not changed:
            break
    return best, best_value


def calibration_regions(problem, limit: dict[int, int] | None = None) -> list[ValRegion]:
    """The held-apart validation regions, then annotated training samples (whole, or a corner box of a
    sample too big for the budget), evenly spread, until :data:`CALIBRATION_PIXELS` are used.

    Needs the problem's instance labels in ``val_truth`` as one array; without them (or for a data set, whose
    truth is cropped per region), the validation regions only.
    """
    regions = list(problem.val_regions)
    labels = problem.val_truth
    if not isinstance(labels, np.ndarray):  # none, or a data set's crops: the held-apart regions only
        return regions
    spatial = labels.shape[1:]
    budget = (limit or CALIBRATION_PIXELS)[len(spatial)]
    held = {r.sample for r in regions if all(b.stop - b.start == s for b, s in zip(r.box, spatial))}
    annotated = [i for i in range(labels.shape[0]) if i not in held and labels[i].any()]
    per = int(np.prod(spatial))
    if not annotated:
        return regions
    k = max(1, min(len(annotated), budget // per))
    picks = [annotated[j] for j in np.unique(np.linspace(0, len(annotated) - 1, k).round().astype(int))]
    box = tuple(slice(0, s) for s in spatial)
    if per > budget:  # one sample is more than the budget: a box around the middle of its objects
        scale = (budget / per) ** (1 / len(spatial))
        centre = [int(np.median(c)) for c in np.nonzero(labels[picks[0]])]
        sides = [max(16, int(s * scale)) for s in spatial]
        box = tuple(slice(max(0, min(c - w // 2, s - w)), max(0, min(c - w // 2, s - w)) + min(w, s))
                    for c, w, s in zip(centre, sides, spatial))
    return regions + [ValRegion(int(i), box) for i in picks]
