"""Denoising quality on real images with a known clean reference, through the CLI.

Development script, not a quality claim: it predates the quality suite's locked protocol (``suite.SPLITS``) and
scores pixels that are now locked test data (the stack's x >= 128, slice 14). Its numbers are not used in the
README; quality is reported by ``benchmarks/quality/quality.py --report`` alone.

Clean references (bundled, real): slice 14 of ``sample_data/nuclei_3d.tif`` (256x256,
uint16) and ``sample_data/timelapse_crop.tif`` (8 frames, TYX, 256x256, uint8). Each
gets two kinds of synthetic noise (seeded):

* ``gauss``: additive Gaussian, sigma = 15% of the clean image's range;
* ``poisson-gauss``: Poisson shot noise (20 photons at the brightest pixel) plus
  Gaussian read noise (sigma = 5% of the range).

For each case it reports PSNR (data range of the clean image) and SSIM of: the noisy
input; the best Gaussian filter (sigma chosen *against the clean reference*, an upper
bound for that filter); scikit-image NL-means with the usual settings from its
estimated noise sigma (h = 0.8 sigma, 5x5 patches, distance 6) and with h chosen
against the reference (oracle); ``napari-bioimg train --task denoise --time-limit T``
then ``predict`` and ``evaluate``; and, if a Python with CAREamics is given, its N2V
trained on the same noisy image for the same wall-clock budget. Stacks are filtered
frame by frame. Prints a Markdown table and writes JSON.

    flock /tmp/napari-bioimg-bench.lock python -m benchmarks.quality.denoise_quality --time-limit 120 \\
        --out bench_output/denoise [--threads 1] [--temporal-context 1] [--careamics-python /tmp/care/bin/python]
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
from skimage.filters import gaussian
from skimage.restoration import denoise_nl_means, estimate_sigma

from benchmarks.common import SAMPLE, child_env
from napari_bioimg.core.metrics import image_scores

CAREAMICS_MODULE = "benchmarks.references.careamics_n2v"


def clean_images() -> dict[str, tuple[np.ndarray, str]]:
    nuclei = tifffile.imread(SAMPLE / "nuclei_3d.tif")[14]
    timelapse = tifffile.imread(SAMPLE / "timelapse_crop.tif")
    return {"nuclei-2d": (nuclei, "YX"), "timelapse-TYX": (timelapse, "TYX")}


def add_noise(clean: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """Float32 noisy copy of ``clean`` (values may leave the dtype's range, as raw data would before clipping)."""
    rng = np.random.default_rng(seed)
    c = clean.astype(np.float64)
    lo, span = c.min(), c.max() - c.min()
    if kind == "gauss":
        noisy = c + rng.normal(0, 0.15 * span, c.shape)
    elif kind == "poisson-gauss":
        peak = 20.0
        photons = rng.poisson((c - lo) / span * peak)
        noisy = lo + (photons / peak + rng.normal(0, 0.05, c.shape)) * span
    else:
        raise ValueError(kind)
    return noisy.astype(np.float32)


def framewise(fn, img: np.ndarray, axes: str) -> np.ndarray:
    if axes.startswith("T"):
        return np.stack([fn(f) for f in img]).astype(np.float32)
    return fn(img).astype(np.float32)


def best_gaussian(noisy, clean, axes):
    best = None
    for sigma in np.arange(0.5, 4.01, 0.25):
        out = framewise(lambda f, s=sigma: gaussian(f, s, preserve_range=True), noisy, axes)
        p = image_scores(out, clean, axes)["psnr"]
        if best is None or p > best[0]:
            best = (p, float(sigma), out)
    return best[2], {"sigma": best[1]}


def nl_means(noisy, h_factor, axes):
    def one(f):
        sigma = float(estimate_sigma(f))
        return denoise_nl_means(f, h=h_factor * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True,
                                preserve_range=True)

    return framewise(one, noisy, axes)


def best_nl_means(noisy, clean, axes):
    best = None
    for h in (0.4, 0.6, 0.8, 1.0, 1.2, 1.5):
        out = nl_means(noisy, h, axes)
        p = image_scores(out, clean, axes)["psnr"]
        if best is None or p > best[0]:
            best = (p, h, out)
    return best[2], {"h_factor": best[1]}


def cli(*args: str) -> tuple[str, str]:
    """Run ``napari-bioimg`` from this checkout; return (stdout, stderr)."""
    cmd = [sys.executable, "-m", "napari_bioimg.cli", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    if res.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")
    return res.stdout, res.stderr


def ours(noisy_path: Path, truth_path: Path, axes: str, d: Path, time_limit: float, model: str,
         threads: int, context: int = 0) -> list[tuple[str, dict, dict]]:
    """Train once through the CLI, predict without and with test-time augmentation (flips)."""
    tag = f"{model}-context{context}" if context else model
    model_path = d / f"{tag}.pt"
    t0 = time.perf_counter()
    _, log = cli("train", "--task", "denoise", "--model", model, "--image", str(noisy_path), "--axes", axes,
                 "--out", str(model_path), "--time-limit", str(time_limit), "--threads", str(threads), "--quiet",
                 *(["--temporal-context", str(context)] if context else []))
    train_s = time.perf_counter() - t0
    summary = json.loads(log.strip().splitlines()[-1])
    rows = []
    for tta in (False, True):
        pred_path = d / f"ours-{tag}{'-tta' if tta else ''}.tif"
        t0 = time.perf_counter()
        cli("predict", "--model", str(model_path), "--image", str(noisy_path), "--axes", axes, "--out",
            str(pred_path), "--threads", str(threads), "--quiet", *(["--tta"] if tta else []))
        predict_s = time.perf_counter() - t0
        report = json.loads(cli("evaluate", "--task", "denoise", "--pred", str(pred_path), "--truth",
                                str(truth_path), "--axes", axes)[0])
        info = {"steps": summary["steps"], "train_s": round(train_s, 1), "predict_s": round(predict_s, 1)}
        label = (f"ours: denoise {model}, {time_limit:g} s" + (f", --temporal-context {context}" if context else "")
                 + (", predict --tta" if tta else ""))
        rows.append((label, report, info))
    return rows


def careamics(python: str, noisy_path: Path, axes: str, d: Path, time_limit: float, threads: int):
    pred_path = d / "careamics.tif"
    cmd = [python, "-m", CAREAMICS_MODULE, "--image", str(noisy_path), "--axes", axes, "--out", str(pred_path),
           "--time-limit", str(time_limit), "--workdir", str(d / "careamics_work"), "--threads", str(threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    if res.returncode != 0:
        return None, {"error": res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"}
    info = json.loads(res.stdout.strip().splitlines()[-1])
    pred = tifffile.imread(pred_path)
    return pred, info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=120)
    ap.add_argument("--out", default="bench_output/denoise")
    ap.add_argument("--models", nargs="+", default=["unet"], help="our model families to train (unet, autoencoder)")
    ap.add_argument("--careamics-python", help="a Python with careamics installed (run in its own venv)")
    ap.add_argument("--cases", nargs="+", help="only these cases, e.g. nuclei-2d/gauss")
    ap.add_argument("--temporal-context", type=int, default=0, metavar="K",
                    help="also train ours with frames t-K..t+K as input on the time-lapse cases")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads for training and prediction (ours and CAREamics; default 1: on a "
                         "machine shared with other jobs, more threads spin against each other)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, results = [], []
    for name, (clean, axes) in clean_images().items():
        for kind in ("gauss", "poisson-gauss"):
            case = f"{name}/{kind}"
            if args.cases and case not in args.cases:
                continue
            d = out / name / kind
            d.mkdir(parents=True, exist_ok=True)
            noisy = add_noise(clean, kind)
            noisy_path, truth_path = d / "noisy.tif", d / "clean.tif"
            tifffile.imwrite(noisy_path, noisy, metadata={"axes": axes})
            tifffile.imwrite(truth_path, clean, metadata={"axes": axes})
            methods: dict[str, tuple[dict, dict]] = {}
            methods["noisy input"] = (image_scores(noisy, clean, axes), {})
            g, gi = best_gaussian(noisy, clean, axes)
            methods["best Gaussian filter (oracle sigma)"] = (image_scores(g, clean, axes), gi)
            t0 = time.perf_counter()
            nlm = nl_means(noisy, 0.8, axes)
            methods["NL-means (h = 0.8 sigma_est)"] = (image_scores(nlm, clean, axes),
                                                       {"seconds": round(time.perf_counter() - t0, 1)})
            nb, nbi = best_nl_means(noisy, clean, axes)
            methods["NL-means (oracle h)"] = (image_scores(nb, clean, axes), nbi)
            for model in args.models:
                for label, report, info in ours(noisy_path, truth_path, axes, d, args.time_limit, model,
                                                args.threads):
                    methods[label] = (report, info)
                if args.temporal_context and axes.startswith("T"):
                    for label, report, info in ours(noisy_path, truth_path, axes, d, args.time_limit, model,
                                                    args.threads, args.temporal_context):
                        methods[label] = (report, info)
            if args.careamics_python:
                pred, info = careamics(args.careamics_python, noisy_path, axes, d, args.time_limit, args.threads)
                label = f"CAREamics N2V, {args.time_limit:g} s"
                methods[label] = (image_scores(pred, clean, axes) if pred is not None else {}, info)
            ref = methods["NL-means (h = 0.8 sigma_est)"][0]["psnr"]
            for method, (scores, info) in methods.items():
                results.append({"case": case, "method": method, **scores, "info": info})
                if scores:
                    rows.append(f"| {case} | {method} | {scores['psnr']:.2f} | {scores['psnr'] - ref:+.2f} | "
                                f"{scores['ssim']:.3f} | {_fmt(info)} |")
                else:
                    rows.append(f"| {case} | {method} | - | - | - | {_fmt(info)} |")
            print("\n".join(rows[-len(methods):]), flush=True)
    table = ["| case | method | PSNR (dB) | vs NL-means | SSIM | notes |", "| --- | --- | ---: | ---: | ---: | --- |"]
    text = "\n".join(table + rows)
    print("\n" + text)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "results.md").write_text(text + "\n")
    return 0


def _fmt(info: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in info.items())


if __name__ == "__main__":
    sys.exit(main())
