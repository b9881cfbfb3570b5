"""Does a recurrent temporal model earn its place? unet-gru vs frame-by-frame vs frames-as-channels, same budget.

Real clean time-lapses (TYX, uint8): ``/work/shared/data/2D_timelapse.tif`` (30 x 511 x 511, "full"; or
``--full PATH``) and the bundled ``sample_data/timelapse_crop.tif`` (8 x 256 x 256, "crop"). The first two
thirds of the frames are for training, the rest (never seen in training) for scoring.

* **denoise**: Poisson-Gaussian noise (20 photons at the brightest pixel, read noise 5% of the range, seeded)
  on every frame; each method trains the blind-spot denoiser on the noisy training frames, predicts the noisy
  test frames, and is scored by PSNR / SSIM against the clean test frames (``napari-bioimg evaluate``).
* **segment** (with ``--tasks segment``): there are no ground-truth labels for these movies, so the target is
  built from the *clean* frames by a classical pipeline (Gaussian blur, Otsu threshold, objects >= 40 px,
  seeded watershed on the distance transform). Each method trains ``instance`` segmentation on the *noisy*
  training frames against those labels and is scored by F1 at IoU 0.5 (and mean AP 0.5:0.9) against the
  labels of the clean test frames: how well it recovers, from noisy frames, the segmentation the clean ones
  give. It is a pseudo ground truth (it has the classical pipeline's mistakes), the same for every method.

Methods, each trained through the CLI for the same ``--time-limit`` with ``--threads``:
``frame-wise`` (``--model unet``), ``frames-as-channels`` (``--model unet --temporal-context 1``) and
``unet-gru`` (``--model unet-gru --temporal-context 1``), same depth and width (the task's defaults).

    nice python -m benchmarks.quality.temporal_quality --time-limit 90 --seeds 0 1 --datasets crop full \\
        --tasks denoise segment --threads 1 --out bench_output/temporal

Prints one JSON row per run and a Markdown table (mean +- sd over seeds); writes ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from benchmarks.common import OUTPUT, SAMPLE, child_env

FULL = Path("/work/shared/data/2D_timelapse.tif")
METHODS = {
    "frame-wise": ("unet", 0),
    "frames-as-channels": ("unet", 1),
    "unet-gru": ("unet-gru", 1),
}


def cli(*args: str) -> tuple[str, str]:
    """Run ``napari-bioimg`` from this checkout; return (stdout, stderr)."""
    cmd = [sys.executable, "-m", "napari_bioimg.cli", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    if res.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")
    return res.stdout, res.stderr


def add_noise(clean: np.ndarray, seed: int) -> np.ndarray:
    """Poisson (20 photons at the brightest pixel) + Gaussian read noise (5% of the range), float32."""
    rng = np.random.default_rng(seed)
    c = clean.astype(np.float64)
    lo, span = c.min(), c.max() - c.min()
    noisy = lo + (rng.poisson((c - lo) / span * 20.0) / 20.0 + rng.normal(0, 0.05, c.shape)) * span
    return noisy.astype(np.float32)


def pseudo_labels(clean: np.ndarray) -> np.ndarray:
    """Instance labels of each clean frame by blur + Otsu + distance-transform watershed (a classical pipeline)."""
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.segmentation import watershed

    out = np.zeros(clean.shape, np.uint16)
    next_id = 1
    for t, frame in enumerate(clean.astype(np.float32)):
        smooth = gaussian(frame, 1.5, preserve_range=True)
        comp, _ = ndi.label(smooth > threshold_otsu(smooth))
        sizes = np.bincount(comp.ravel())
        fg = (comp > 0) & (sizes[comp] >= 40)
        dist = ndi.distance_transform_edt(fg)
        peaks = peak_local_max(dist, min_distance=12, labels=ndi.label(fg)[0], exclude_border=False)
        markers = np.zeros(frame.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        lab = watershed(-dist, markers, mask=fg)
        out[t] = np.where(lab > 0, lab + next_id - 1, 0)
        next_id += int(lab.max())
    return out


def load(name: str, full: Path) -> np.ndarray:
    if name == "crop":
        return tifffile.imread(SAMPLE / "timelapse_crop.tif")
    return tifffile.imread(full)


def run_one(task: str, method: str, d: Path, paths: dict, args, seed: int) -> dict:
    model, context = METHODS[method]
    tag = f"{task}-{method}-s{seed}"
    model_path = d / f"{tag}.pt"
    train_args = ["train", "--task", "instance" if task == "segment" else "denoise", "--model", model,
                  "--image", str(paths["train"]), "--axes", "TYX", "--out", str(model_path),
                  "--threads", str(args.threads), "--seed", str(seed), "--quiet"]
    if args.epochs:  # the same number of steps for every method instead of the same time
        train_args += ["--epochs", str(args.epochs)]
    else:
        train_args += ["--time-limit", str(args.time_limit)]
    if task == "segment":
        train_args += ["--labels", str(paths["train_labels"])]
    if context:
        train_args += ["--temporal-context", str(context)]
    t0 = time.perf_counter()
    _, log = cli(*train_args)
    train_s = time.perf_counter() - t0
    summary = json.loads(log.strip().splitlines()[-1])
    pred = d / f"{tag}-pred.tif"
    cli("predict", "--model", str(model_path), "--image", str(paths["test"]), "--axes", "TYX", "--out", str(pred),
        "--threads", str(args.threads), "--quiet")
    if task == "segment":
        report = json.loads(cli("evaluate", "--task", "instance", "--pred", str(pred), "--truth",
                                str(paths["test_labels"]), "--axes", "TYX")[0])
        th = report["thresholds"]
        scores = {"f1@0.5": th["0.5"]["f1"], "f1@0.7": th["0.7"]["f1"],
                  "mean_ap": round(float(np.mean([v["ap"] for v in th.values()])), 4)}
    else:
        report = json.loads(cli("evaluate", "--task", "denoise", "--pred", str(pred), "--truth",
                                str(paths["clean_test"]), "--axes", "TYX")[0])
        scores = {"psnr": report["psnr"], "ssim": report.get("ssim")}
    return {"task": task, "method": method, "seed": seed, **scores, "steps": summary.get("steps"),
            "train_s": round(train_s, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--time-limit", type=float, default=90.0)
    p.add_argument("--epochs", type=int, default=None,
                   help="train every method for this many epochs of 50 steps instead of --time-limit")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--datasets", nargs="+", default=["crop", "full"], choices=("crop", "full"))
    p.add_argument("--tasks", nargs="+", default=["denoise"], choices=("denoise", "segment"))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--full", type=Path, default=FULL, help="the 30-frame time-lapse (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=OUTPUT / "temporal")
    args = p.parse_args(argv)
    rows = []
    for name in args.datasets:
        clean = load(name, args.full)
        n_train = int(round(len(clean) * 2 / 3))
        for seed in args.seeds:
            d = args.out / name
            d.mkdir(parents=True, exist_ok=True)
            noisy = add_noise(clean, seed)
            paths = {"train": d / f"noisy-train-s{seed}.tif", "test": d / f"noisy-test-s{seed}.tif",
                     "clean_test": d / "clean-test.tif"}
            tifffile.imwrite(paths["train"], noisy[:n_train], metadata={"axes": "TYX"})
            tifffile.imwrite(paths["test"], noisy[n_train:], metadata={"axes": "TYX"})
            tifffile.imwrite(paths["clean_test"], clean[n_train:], metadata={"axes": "TYX"})
            if "segment" in args.tasks:
                labels = pseudo_labels(clean)
                paths["train_labels"], paths["test_labels"] = d / "labels-train.tif", d / "labels-test.tif"
                tifffile.imwrite(paths["train_labels"], labels[:n_train], metadata={"axes": "TYX"})
                tifffile.imwrite(paths["test_labels"], labels[n_train:], metadata={"axes": "TYX"})
            for task in args.tasks:
                for method in args.methods:
                    row = {"dataset": name, "frames": f"{n_train} train / {len(clean) - n_train} test",
                           **run_one(task, method, d, paths, args, seed)}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    print(table(rows))
    return 0


def table(rows: list[dict]) -> str:
    """Markdown: mean +- sd over seeds per dataset, task and method."""
    lines = ["| dataset | task | method | score (mean ± sd over seeds) | steps | seeds |", "|---|---|---|---|---|---|"]
    keys = sorted({(r["dataset"], r["task"], r["method"]) for r in rows},
                  key=lambda k: (k[0], k[1], list(METHODS).index(k[2])))
    for ds, task, method in keys:
        rs = [r for r in rows if (r["dataset"], r["task"], r["method"]) == (ds, task, method)]
        metric = "psnr" if task == "denoise" else "f1@0.5"
        vals = np.array([r[metric] for r in rs if r.get(metric) is not None], dtype=float)
        steps = int(np.mean([r["steps"] for r in rs if r.get("steps") is not None]))
        score = f"{metric} {vals.mean():.2f} ± {vals.std():.2f}" if len(vals) > 1 else f"{metric} {vals.mean():.3f}"
        lines.append(f"| {ds} | {task} | {method} | {score} | {steps} | {len(rs)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
