"""Recipe lab: train a variant of the engine's settings on a quality-suite entry for a fixed number of optimizer
steps (not seconds: the shared machine's load then does not decide the comparison), keep the model and the
probability maps it gives on the entry's tune split (never its locked test split), on the training data and on the engine's held-apart validation
regions, so post-processing recipes (thresholds, minimum size, test-time augmentation, 3D linking) can be
re-scored offline without retraining.

Experiment of 2026-12-01 (issue 14). Answered: which post-processing recipes to adopt, scored offline on saved
probability maps (``results/recipes-2026-12-01.jsonl``): instance thresholds calibrated after training (merged
2026-12-01). Since issue 20 (2026-12-07) it explores tune splits only.

    python -m benchmarks.experiments.recipe_lab nuclei2d-dsb --steps 200 --variant default '{}' --out bench_output/lab
    python -m benchmarks.experiments.recipe_lab nuclei3d-stack --steps 150 --variant slices '{"spatial_dims": 2}'

Each variant writes ``OUT/ENTRY/VARIANT/`` with ``model.pt``, ``probs.npz`` (instance entries) and
``row.json`` (steps, seconds, load, validation metrics and the tune-split scores at the model's own settings).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.quality.suite import ENTRIES, load, lock_test_split, stack

lock_test_split()  # recipes are explored on tune splits only: reading the locked test split raises


def capture_probs(loaded, image, axes, tta=False):
    """The activated outputs the model's post-processing sees, one array per sample, and its result."""
    from napari_bioimg.core import predict_sync

    probs = []
    task = loaded.task
    original = task.postprocess

    def keep(out, meta):
        probs.append(np.asarray(out, np.float32).copy())
        return original(out, meta)

    task.postprocess = keep
    try:
        result = predict_sync(loaded, image, axes, tta=tta)
    finally:
        task.postprocess = original
    return probs, result


def entry_arrays(entry):
    data = load(entry)
    tr_img, framed = stack([x for x, _ in data.train])
    tr_ax = ("T" if framed else "") + entry.axes
    te_img, framed_te = stack([x for x, _ in data.test])
    te_ax = ("T" if framed_te else "") + entry.axes
    tr_lbl = None if data.train[0][1] is None else stack([y for _, y in data.train])[0]
    te_lbl = stack([y for _, y in data.test])[0]
    return data, tr_img, tr_lbl, tr_ax, te_img, te_lbl, te_ax


def run_variant(entry, overrides: dict, steps: int, threads: int, out: Path, tta: bool = True,
                time_limit: float | None = None) -> dict:
    from napari_bioimg.core import TrainConfig, predict_sync, train_sync
    from napari_bioimg.core.formats.checkpoint import save_checkpoint
    from napari_bioimg.core.formats.loading import load_model
    from napari_bioimg.core.metrics import image_scores, matching_stack, semantic_scores

    data, tr_img, tr_lbl, tr_ax, te_img, te_lbl, te_ax = entry_arrays(entry)
    cfg = dict(task=entry.task, num_threads=threads, seed=0)
    if time_limit:
        cfg.update(time_limit=time_limit)
    else:
        per = min(50, steps)
        cfg.update(time_limit=None, epochs=max(1, round(steps / per)), steps_per_epoch=per)
    cfg.update(overrides)
    if isinstance(cfg.get("patch_size"), list):
        cfg["patch_size"] = tuple(cfg["patch_size"])
    axes_tr = overrides.pop("_axes", None) or tr_ax
    cfg.pop("_axes", None)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    if entry.task == "denoise":
        res = train_sync(te_img, None, TrainConfig(**cfg), axes=te_ax)
    else:
        res = train_sync(tr_img, tr_lbl, TrainConfig(**cfg), axes=axes_tr)
    secs = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(res.checkpoint, out / "model.pt")
    row = {"entry": entry.name, "overrides": overrides, "steps": res.steps, "train_s": round(secs, 1),
           "load": [round(load0, 2), round(os.getloadavg()[0], 2)], "val": res.metrics,
           "meta": {k: v for k, v in res.checkpoint["task"]["meta"].items() if isinstance(v, (int, float, str))}}
    loaded = load_model(res.checkpoint, "cpu")
    if entry.task == "instance":
        arrays = {}
        for name, img, ax, use_tta in (("tune", te_img, te_ax, False), ("tune_tta", te_img, te_ax, True),
                                       ("train", tr_img, axes_tr, False)):
            if use_tta and not tta:
                continue
            probs, result = capture_probs(loaded, img, ax, use_tta)
            arrays[name] = np.stack(probs)
            if name.startswith("tune"):
                truths = list(te_lbl) if te_ax.startswith("T") else [te_lbl]
                preds = list(result) if te_ax.startswith("T") else [result]
                m = matching_stack(truths, preds)
                row[name] = {"f1": round(m["thresholds"]["0.5"]["f1"], 4),
                             "mean_ap": round(float(np.mean([v["ap"] for v in m["thresholds"].values()])), 4),
                             "n_pred": m["n_pred"], "n_true": m["n_true"]}
        np.savez_compressed(out / "probs.npz", **arrays)
    elif entry.task == "semantic":
        test, dense = data.test[0]
        sc = semantic_scores(dense, predict_sync(loaded, test, entry.axes))
        row["tune"] = {"mean_iou": round(sc["mean_iou"], 4), "accuracy": round(sc["accuracy"], 4)}
    elif entry.task == "denoise":
        clean = stack([c for _, c in data.test])[0]
        row["tune"] = image_scores(predict_sync(loaded, te_img, te_ax), clean, te_ax)
        if tta:
            row["tune_tta"] = image_scores(predict_sync(loaded, te_img, te_ax, tta=True), clean, te_ax)
    (out / "row.json").write_text(json.dumps(row, indent=1, default=float))
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("entry")
    ap.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--time-limit", type=float, help="seconds instead of --steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-tta", action="store_true")
    ap.add_argument("--out", default="bench_output/lab")
    a = ap.parse_args()
    e = ENTRIES[a.entry]
    for name, js in a.variant:
        row = run_variant(e, json.loads(js), a.steps, a.threads, Path(a.out) / a.entry / name, not a.no_tta,
                          a.time_limit)
        print(json.dumps({"variant": name, **{k: row[k] for k in row if k not in ("meta",)}}, default=float),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
