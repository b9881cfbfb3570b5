"""Quality that transfers: train on some real images, score OTHER images, side by side with one image.

Experiment of 2026-12-01 (issue 12). Answered: more images transfer better to a kind never seen (DSB nuclei
F1@0.5 0.546 trained on one HeLa frame, 0.655 on four); a second kind in the set helped that kind (stack 0.762 ->
0.792) but not the others; a denoiser trained on one image does not transfer to another kind, a set of three kinds
does (time-lapse 14.22 -> 28.70 dB); blind-spot pretraining helped the unseen kind (0.608 -> 0.715). README, "Many
images, one model".

Everything goes through the command line a user types (``napari-bioimg train`` on folders,
``predict`` on a folder, ``evaluate`` per image); the scores are pooled over the test images
(instance: matched objects summed over images, then F1; denoising: mean PSNR). Every model
gets the same number of optimizer steps (``--steps``, as ``--epochs N --steps-per-epoch 50``), so
a busy machine changes the time taken, not the result.

Parts (``--part``):

* ``instance`` — real nuclei with ground truth (``benchmarks/data/README.md``):
  ``one``: HeLa frame 0 (384x512); ``hela4``: HeLa frames 0-3; ``mixed``: HeLa frames 0-3 and
  8 slices (4, 6, ..., 18) of the confocal nuclei stack (256x256): two kinds, two sizes.
  Scored on HeLa frames 16-19, stack slices 20, 22, ..., 32, and the DSB 2018 image (512x512,
  small dense nuclei: a kind no model saw).
* ``denoise`` — clean real images with synthetic Gaussian noise (sigma = 15% of each image's
  range, as the quality suite): ``one``: nuclei slice 10; ``mixed``: nuclei slices 4-18 (every
  2nd), time-lapse frames 0-3 (256x256) and phase-contrast bacteria frames 10-13 (288x288).
  Scored (PSNR against the clean image) on nuclei slices 20-32 (every 4th), time-lapse frames
  5-7 and bacteria frames 16-19.
* ``pretrain`` — few labels, many images: the ``mixed`` instance images with only HeLa frame 0
  and stack slice 10 annotated (``--allow-unlabelled``); with ``--pretrain-steps P`` (blind-spot
  pretraining on all 12 images) vs without, and vs without but with P more supervised steps
  (the same number of optimizer steps in all).

Prints one JSON row per model and test set, then a table; writes ``--out``/results.json::

    python -m benchmarks.experiments.transfer --part instance --steps 300     # ~25 min on 2 busy cores
    python -m benchmarks.experiments.transfer --part denoise --steps 300      # ~10 min
    python -m benchmarks.experiments.transfer --part pretrain --steps 300 --pretrain-steps 300
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from benchmarks.common import OUTPUT, ROOT
from benchmarks.quality.suite import DATA, SAMPLE, add_noise

STEPS_PER_EPOCH = 50


def cli(*args: str) -> str:
    """Run ``napari-bioimg ARGS``; return stderr (raise with it on failure)."""
    res = subprocess.run([sys.executable, "-m", "napari_bioimg.cli", *args], capture_output=True, text=True,
                         cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"napari-bioimg {' '.join(args)} failed:\n{res.stderr[-3000:]}")
    return res.stdout if args[0] == "evaluate" else res.stderr


def write(folder: Path, items: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> Path:
    """``folder/imgs/NAME.tif`` and ``folder/masks/NAME.tif`` (or the clean image for denoising)."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "imgs").mkdir(parents=True)
    (folder / "masks").mkdir()
    for name, (img, truth) in items.items():
        tifffile.imwrite(folder / "imgs" / f"{name}.tif", img)
        if truth is not None:
            tifffile.imwrite(folder / "masks" / f"{name}.tif", truth)
    return folder


def real_nuclei() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    hela, hela_m = tifffile.imread(DATA / "hela_img.tif"), tifffile.imread(DATA / "hela_mask.tif")
    stack, stack_m = tifffile.imread(SAMPLE / "nuclei_3d.tif"), tifffile.imread(SAMPLE / "nuclei_3d_labels.tif")
    items = {f"hela_t{t:02d}": (hela[t], hela_m[t]) for t in range(4)}
    items.update({f"hela_t{t + 12:02d}": (hela[t], hela_m[t]) for t in range(4, 8)})  # frames 16-19
    items.update({f"stack_z{z:02d}": (stack[z], stack_m[z]) for z in range(4, 34, 2)})
    items["dsb"] = (tifffile.imread(DATA / "dsb2018_img.tif"), tifffile.imread(DATA / "dsb2018_mask.tif"))
    return items


def pick(items: dict, names) -> dict:
    return {n: items[n] for n in names}


def instance_sets(out: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    items = real_nuclei()
    hela_train = [f"hela_t{t:02d}" for t in range(4)]
    stack_train = [f"stack_z{z:02d}" for z in range(4, 19, 2)]
    train = {"one": write(out / "train_one", pick(items, ["hela_t00"])),
             "hela4": write(out / "train_hela4", pick(items, hela_train)),
             "mixed": write(out / "train_mixed", pick(items, hela_train + stack_train))}
    test = {"hela t16-19": write(out / "test_hela", pick(items, [f"hela_t{t}" for t in range(16, 20)])),
            "stack z20-32": write(out / "test_stack", pick(items, [f"stack_z{z}" for z in range(20, 34, 2)])),
            "dsb (unseen kind)": write(out / "test_dsb", pick(items, ["dsb"]))}
    return train, test


def denoise_sets(out: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    nuclei = tifffile.imread(SAMPLE / "nuclei_3d.tif")
    lapse = tifffile.imread(SAMPLE / "timelapse_crop.tif")
    bacteria = tifffile.imread(DATA / "bacteria_img.tif")

    def noisy(name, clean, seed):
        return name, (add_noise(clean, "gauss-high", seed), clean)

    def group(prefix, stack, frames):
        return dict(noisy(f"{prefix}{i:02d}", stack[i], 100 * len(prefix) + i) for i in frames)

    train = {"one": write(out / "dn_train_one", group("nuclei_z", nuclei, [10])),
             "mixed": write(out / "dn_train_mixed", {**group("nuclei_z", nuclei, range(4, 19, 2)),
                                                    **group("lapse_t", lapse, range(4)),
                                                    **group("bacteria_t", bacteria, range(0, 4))})}
    test = {"nuclei z20-32": write(out / "dn_test_nuclei", group("nuclei_z", nuclei, range(20, 33, 4))),
            "time-lapse t5-7": write(out / "dn_test_lapse", group("lapse_t", lapse, range(5, 8))),
            "bacteria t6-9": write(out / "dn_test_bacteria", group("bacteria_t", bacteria, range(6, 10)))}
    return train, test


def train_model(folder: Path, model: Path, task: str, steps: int, *flags: str) -> dict:
    labels = ["--labels", str(folder / "masks")] if task != "denoise" else []
    t = time.perf_counter()
    err = cli("train", "--task", task, "--image", str(folder / "imgs"), *labels, "--out", str(model),
              "--epochs", str(max(1, steps // STEPS_PER_EPOCH)), "--steps-per-epoch", str(min(steps, STEPS_PER_EPOCH)),
              "--seed", "0", "--quiet", *flags)
    summary = json.loads(next(line for line in err.splitlines() if line.startswith("{")))
    return {"steps": summary["steps"], "train_s": round(time.perf_counter() - t, 1),
            "validation": summary.get("validation")}


def score(model: Path, test: Path, pred: Path, task: str) -> dict:
    cli("predict", "--model", str(model), "--image", str(test / "imgs"), "--out", str(pred), "--workers", "1",
        "--quiet")
    if task == "denoise":
        psnr = [json.loads(cli("evaluate", "--task", "denoise", "--pred", str(p), "--truth",
                               str(test / "masks" / p.name)))["psnr"] for p in sorted(pred.glob("*.tif"))]
        noisy = [_psnr(tifffile.imread(p), tifffile.imread(test / "masks" / p.name))
                 for p in sorted((test / "imgs").glob("*.tif"))]
        return {"psnr": round(float(np.mean(psnr)), 2), "noisy_psnr": round(float(np.mean(noisy)), 2),
                "images": len(psnr)}
    counts = np.zeros(3)
    n_true = 0
    for p in sorted(pred.glob("*.tif")):
        rep = json.loads(cli("evaluate", "--task", "instance", "--pred", str(p), "--truth",
                             str(test / "masks" / p.name)))
        at = rep["thresholds"]["0.5"]
        counts += [at["tp"], at["fp"], at["fn"]]
        n_true += rep["n_true"]
    tp, fp, fn = counts
    return {"f1@0.5": round(2 * tp / max(2 * tp + fp + fn, 1), 3), "precision@0.5": round(tp / max(tp + fp, 1), 3),
            "recall@0.5": round(tp / max(tp + fn, 1), 3), "objects": n_true}


def _psnr(x: np.ndarray, clean: np.ndarray) -> float:
    c = clean.astype(np.float64)
    mse = np.mean((x.astype(np.float64) - c) ** 2)
    return float(10 * np.log10((c.max() - c.min()) ** 2 / mse))


def run_part(part: str, out: Path, steps: int, pretrain_steps: int) -> list[dict]:
    task = "denoise" if part == "denoise" else "instance"
    train_sets, test_sets = denoise_sets(out) if part == "denoise" else instance_sets(out)
    models: list[tuple[str, Path, int, list[str]]]
    if part == "pretrain":
        few = out / "train_few"
        shutil.rmtree(few, ignore_errors=True)
        shutil.copytree(train_sets["mixed"], few)
        for m in (few / "masks").iterdir():
            if m.stem not in ("hela_t00", "stack_z10"):
                m.unlink()
        models = [("2 of 12 annotated", few, steps, ["--allow-unlabelled"]),
                  (f"2 of 12 annotated + pretraining ({pretrain_steps} steps)", few, steps,
                   ["--allow-unlabelled", "--pretrain-steps", str(pretrain_steps)]),
                  (f"2 of 12 annotated, {steps + pretrain_steps} supervised steps", few, steps + pretrain_steps,
                   ["--allow-unlabelled"])]
    else:
        models = [(name, folder, steps, []) for name, folder in train_sets.items()]
    rows = []
    for name, folder, n_steps, flags in models:
        model = out / f"{part}_{name.split()[0].replace('/', '')}_{len(rows)}.pt"
        info = train_model(folder, model, task, n_steps, *flags)
        n_images = len(list((folder / "imgs").iterdir()))
        for test_name, test in test_sets.items():
            result = score(model, test, out / f"pred_{model.stem}_{test.name}", task)
            r = {"part": part, "trained_on": name, "train_images": n_images, "test": test_name, **result, **info,
                 "load_avg_1min": round(os.getloadavg()[0], 1)}
            print(json.dumps(r), flush=True)
            rows.append(r)
    return rows


def table(rows: list[dict]) -> str:
    key = "psnr" if rows and "psnr" in rows[0] else "f1@0.5"
    tests = list(dict.fromkeys(r["test"] for r in rows))
    lines = [f"| trained on | images | steps | {' | '.join(tests)} |", "|---|---|---|" + "---|" * len(tests)]
    for name in dict.fromkeys(r["trained_on"] for r in rows):
        mine = {r["test"]: r for r in rows if r["trained_on"] == name}
        first = next(iter(mine.values()))
        lines.append(f"| {name} | {first['train_images']} | {first['steps']} | "
                     + " | ".join(f"{mine[t][key]}" for t in tests) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("instance", "denoise", "pretrain"), nargs="+",
                    default=["instance", "denoise"])
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps per model (a multiple of 50)")
    ap.add_argument("--pretrain-steps", type=int, default=300)
    ap.add_argument("--out", type=Path, default=OUTPUT / "transfer")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    everything = []
    for part in args.part:
        rows = run_part(part, args.out, args.steps, args.pretrain_steps)
        everything += rows
        print(f"\n{part} ({'mean PSNR, dB' if part == 'denoise' else 'F1@0.5 pooled over the test images'}):")
        print(table(rows), flush=True)
    (args.out / "results.json").write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
