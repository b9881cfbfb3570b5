"""Recipe experiments on a quality-suite entry: train variants of the engine's settings (TrainConfig fields,
task options) through the Python API on the entry's training data, score on its tune split (the locked test
split is refused: see suite.lock_test_split).

Experiment of 2026-12-01 (issue 14). Answered: on ``nuclei2d-dsb``, boundary weight 1.0 or no augmentation did not
beat the defaults once thresholds were calibrated; a 16x64x64 3D patch trained where the default one did not; class
weights helped scribbles (``benchmarks/FINDINGS.md``, "Retraining experiments"). Explores tune splits only.

For instance entries it also re-scores each model's probabilities at several interior / foreground thresholds
(as benchmarks/experiments/quality_probe.py), and at the threshold chosen on the *training* image (in-sample calibration).

    python -m benchmarks.experiments.recipe_experiments nuclei2d-dsb \
        --variant default '{}' --variant bw1 '{"task_config": {"boundary_weight": 1.0}}' --time-limit 120
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.quality.suite import ENTRIES, load, lock_test_split, stack

lock_test_split()  # recipes are explored on tune splits only: reading the locked test split raises

THRESHOLDS = (0.5, 0.6, 0.7, 0.8)


def _instances_at(loaded, image, axes, truths, thresholds):
    from napari_bioimg.core import predict_sync
    from napari_bioimg.core.metrics import matching_stack
    from napari_bioimg.core.tasks.segmentation import probabilities_to_instances

    probs = []
    original = loaded.task.postprocess

    def keep(out, meta):
        probs.append(np.asarray(out).copy())
        return original(out, meta)

    loaded.task.postprocess = keep
    try:
        predict_sync(loaded, image, axes)
    finally:
        loaded.task.postprocess = original
    out = {}
    for t in thresholds:
        m = matching_stack(truths, [probabilities_to_instances(p, t, loaded.meta["min_size"]) for p in probs])
        th = m["thresholds"]
        out[t] = {"f1": round(th["0.5"]["f1"], 3), "mean_ap": round(float(np.mean([v["ap"] for v in th.values()])), 3),
                  "n_pred": m["n_pred"], "n_true": m["n_true"]}
    return out


def run_variant(entry, overrides: dict, time_limit: float, threads: int) -> dict:
    from napari_bioimg.core import TrainConfig, train_sync
    from napari_bioimg.core.formats.loading import load_model
    from napari_bioimg.core.metrics import image_scores

    data = load(entry)
    cfg = dict(task=entry.task, time_limit=time_limit, num_threads=threads)
    overrides = dict(overrides)
    if overrides.pop("_unweighted", False):  # semantic: cross-entropy without the class balancing weights
        from napari_bioimg.core.tasks.segmentation import IGNORE, F, SemanticTask

        SemanticTask.loss = lambda self, logits, target, meta: F.cross_entropy(logits.float(), target,
                                                                              ignore_index=IGNORE)
    cfg.update(overrides)
    if "patch_size" in cfg and isinstance(cfg["patch_size"], list):
        cfg["patch_size"] = tuple(cfg["patch_size"])
    tr_img, framed = stack([x for x, _ in data.train])
    tr_ax = ("T" if framed else "") + entry.axes
    te_img, framed_te = stack([x for x, _ in data.test])
    te_ax = ("T" if framed_te else "") + entry.axes
    t0 = time.perf_counter()
    if entry.task == "denoise":
        res = train_sync(te_img, None, TrainConfig(**cfg), axes=te_ax)
    else:
        tr_lbl = stack([y for _, y in data.train])[0]
        res = train_sync(tr_img, tr_lbl, TrainConfig(**cfg), axes=tr_ax)
    secs = time.perf_counter() - t0
    row = {"steps": res.steps, "train_s": round(secs, 1), "val": res.metrics}
    loaded = load_model(res.checkpoint, "cpu")
    if entry.task == "instance":
        truths = [y for _, y in data.test]
        truths = truths if framed_te else [truths[0]]
        row["tune"] = _instances_at(loaded, te_img, te_ax, truths, THRESHOLDS)
        tr_truths = [y for _, y in data.train] if framed else [data.train[0][1]]
        row["train"] = _instances_at(loaded, tr_img, tr_ax, tr_truths, THRESHOLDS)
        best = max(THRESHOLDS, key=lambda t: (row["train"][t]["mean_ap"], t))
        row["calibrated"] = {"threshold": best, **row["tune"][best]}
    elif entry.task == "semantic":
        from napari_bioimg.core import predict_sync
        from napari_bioimg.core.metrics import semantic_scores

        test, dense = data.test[0]
        sc = semantic_scores(dense, predict_sync(loaded, test, entry.axes))
        row["tune"] = {"mean_iou": round(sc["mean_iou"], 3), "accuracy": round(sc["accuracy"], 3)}
    elif entry.task == "denoise":
        from napari_bioimg.core import predict_sync

        clean = stack([c for _, c in data.test])[0]
        pred = predict_sync(loaded, te_img, te_ax)
        row["tune"] = image_scores(pred, clean, te_ax)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("entry")
    ap.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), required=True)
    ap.add_argument("--time-limit", type=float, default=120)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench_output/recipes.jsonl")
    a = ap.parse_args()
    e = ENTRIES[a.entry]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    for name, js in a.variant:
        import os

        load0 = os.getloadavg()[0]
        row = {"entry": a.entry, "variant": name, "overrides": json.loads(js), "time_limit": a.time_limit,
               **run_variant(e, json.loads(js), a.time_limit, a.threads),
               "load": [round(load0, 2), round(os.getloadavg()[0], 2)]}
        print(json.dumps(row, default=float), flush=True)
        with open(a.out, "a") as f:
            f.write(json.dumps(row, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
