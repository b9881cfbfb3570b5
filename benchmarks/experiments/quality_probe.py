"""Diagnosis helper for the quality suite: re-score a trained instance model's probabilities with other
post-processing settings (interior threshold, minimum size), without retraining.

Experiment of 2026-12-01 (issue 14). Answered: the default instance thresholds (0.5) made objects too fat and
merged touching ones; thresholds chosen on other data (0.7 on all five entries) raised F1@0.5 by +0.004 to +0.21,
which became the calibration after training (``benchmarks/FINDINGS.md``, diagnosis 1). Reads tune-split runs only.

Reads a suite run's entry folder (``model.pt``, ``test.tif``, ``test_truth.tif``) and prints F1@0.5 and mean
AP for each setting, next to the settings stored in the model. Only folders of a tune run (``quality.py``
without ``--report``: its ``split.json`` says ``tune``) are read: a locked test split is never re-scored.

    python -m benchmarks.experiments.quality_probe bench_output/quality/nuclei2d-dsb/seed0 --thresholds 0.3 0.4 0.5 0.6
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import tifffile


def probabilities(model_path: Path, image: np.ndarray, axes: str) -> tuple[list[np.ndarray], dict]:
    """The model's per-class probability maps for each frame (the input of its post-processing)."""
    from napari_bioimg.core import predict_sync
    from napari_bioimg.core.formats.loading import load_model

    loaded = load_model(model_path, "cpu")
    probs = []
    original = loaded.task.postprocess

    def keep(out, meta):
        probs.append(np.asarray(out).copy())
        return original(out, meta)

    loaded.task.postprocess = keep
    predict_sync(loaded, image, axes)
    return probs, dict(loaded.meta)


def instances(prob: np.ndarray, seed_t: float, fg_t: float, min_size: float) -> np.ndarray:
    """The engine's seeded watershed with separate seed (interior) and foreground thresholds."""
    from scipy import ndimage as ndi
    from skimage.segmentation import relabel_sequential, watershed

    from napari_bioimg.core.tasks.segmentation import drop_small

    interior, foreground = prob[1], (prob[1] + prob[2]) > fg_t
    seeds = drop_small(ndi.label(interior > seed_t)[0], max(1, int(min_size * 0.25)))
    labels = watershed(-interior, markers=seeds, mask=foreground)
    orphans, n = ndi.label(foreground & (labels == 0))
    if n:
        labels = np.where(orphans > 0, orphans + labels.max(), labels)
    return relabel_sequential(drop_small(labels, int(min_size)))[0]


def refuse_locked(entry_dir: Path) -> None:
    """Raise unless ``entry_dir`` holds a tune split (its ``split.json``, written by quality.py)."""
    from benchmarks.quality.suite import LockedSplitError

    marker = entry_dir / "split.json"
    split = json.loads(marker.read_text()).get("split") if marker.exists() else None
    if split != "tune":
        raise LockedSplitError(f"{entry_dir}: not a tune-split run (split: {split}); recipes are chosen on tune "
                               "splits only, the locked test split is scored by quality.py --report alone")


def main() -> int:
    from napari_bioimg.core.metrics import matching_stack
    from napari_bioimg.core.tasks.segmentation import probabilities_to_instances

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("entry_dir")
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.7])
    ap.add_argument("--fg-thresholds", type=float, nargs="+", default=[None],
                    help="foreground thresholds (default: the same as the seed threshold)")
    ap.add_argument("--on", default="test", help="score on test.tif (default: the run's scored split, which must be "
                    "its tune split) or train.tif (in-sample calibration)")
    ap.add_argument("--min-size-factor", type=float, nargs="+", default=[None],
                    help="min_size = factor x the training objects' median area (default: the model's own)")
    a = ap.parse_args()
    d = Path(a.entry_dir)
    refuse_locked(d)
    image, truth = tifffile.imread(d / f"{a.on}.tif"), tifffile.imread(d / f"{a.on}_truth.tif")
    axes = tifffile.TiffFile(d / f"{a.on}.tif").series[0].axes.replace("Q", "T")
    probs, meta = probabilities(d / "model.pt", image, axes)
    truths = list(truth) if axes.startswith("T") else [truth]
    rows = []
    for f in a.min_size_factor:
        min_size = meta["min_size"] if f is None else f * meta["median_area"]
        for t, fg in ((t, fg) for t in a.thresholds for fg in a.fg_thresholds):
            if fg is None:
                preds = [probabilities_to_instances(p, t, min_size) for p in probs]
            else:
                preds = [instances(p, t, fg, min_size) for p in probs]
            m = matching_stack(truths, preds)
            th = m["thresholds"]
            rows.append({"threshold": t, "fg_threshold": fg if fg is not None else t, "min_size": round(min_size, 1), "f1@0.5": round(th["0.5"]["f1"], 3),
                         "mean_ap": round(float(np.mean([v["ap"] for v in th.values()])), 3),
                         "n_pred": m["n_pred"], "n_true": m["n_true"]})
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"model_meta": {k: meta.get(k) for k in ("threshold", "min_size", "median_area")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
