"""Instance-segmentation quality on real nuclei with ground truth, through the CLI.

Development script, not a quality claim: it predates the quality suite's locked protocol (``suite.SPLITS``) and
scores pixels that are now locked test data (the stack's x >= 128, slice 14). Its numbers are not used in the
README; quality is reported by ``benchmarks/quality.py --report`` alone.

Two held-apart splits of the bundled stack (sample_data/nuclei_3d*.tif), 2D model:

* ``z-split``: train on slices 4-18, score slices 19-33 (different depths).
* ``xy-split``: train on the left half (x < 128) of slices 4-33, score the right half.

For each split: ``napari-bioimg train --time-limit T``, ``predict``, ``evaluate``; and
two references scored by the same evaluate command, run side by side:

* a *plain PyTorch U-Net* (same width/depth, written out here with nothing from
  napari-bioimg): random 128x128 crops, flips, Adam, foreground/background cross-entropy,
  the same time budget, objects = connected components of the foreground;
* a classical baseline: Otsu threshold + distance-transform seeded watershed.

Prints a Markdown table and writes JSON.

    python benchmarks/segmentation_quality.py --time-limit 120 --out bench_output/seg
"""

from __future__ import annotations

import os

# the same OpenMP setting for the plain baseline (in this process) as napari-bioimg sets for itself
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_otsu
from skimage.segmentation import watershed

ROOT = Path(__file__).resolve().parents[1]


def otsu_watershed(img: np.ndarray) -> np.ndarray:
    """Classical baseline, frame by frame: smooth, Otsu, distance peaks, watershed."""
    out = np.zeros(img.shape, dtype=np.uint32)
    offset = 0
    for i, frame in enumerate(img):
        sm = gaussian(frame.astype(np.float32), 2)
        mask = sm > threshold_otsu(sm)
        dist = ndi.distance_transform_edt(mask)
        peaks = peak_local_max(dist, min_distance=7, labels=ndi.label(mask)[0], exclude_border=False)
        markers = np.zeros(frame.shape, dtype=np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        lab = watershed(-dist, markers, mask=mask)
        lab[lab > 0] += offset
        offset = int(lab.max())
        out[i] = lab
    return out


def _block(cin, cout):
    import torch.nn as nn

    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def plain_unet(train_img, train_lbl, test_img, seconds: float, seed: int = 0) -> np.ndarray:
    """The reference: a textbook 2D U-Net trained for ``seconds``, foreground + connected components."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class UNet(nn.Module):
        def __init__(self, w=16):
            super().__init__()
            self.e1, self.e2, self.e3, self.b = _block(1, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 8 * w)
            self.u3, self.d3 = nn.ConvTranspose2d(8 * w, 4 * w, 2, 2), _block(8 * w, 4 * w)
            self.u2, self.d2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, 2), _block(4 * w, 2 * w)
            self.u1, self.d1 = nn.ConvTranspose2d(2 * w, w, 2, 2), _block(2 * w, w)
            self.out = nn.Conv2d(w, 2, 1)

        def forward(self, x):
            e1 = self.e1(x)
            e2 = self.e2(F.max_pool2d(e1, 2))
            e3 = self.e3(F.max_pool2d(e2, 2))
            b = self.b(F.max_pool2d(e3, 2))
            d3 = self.d3(torch.cat([self.u3(b), e3], 1))
            d2 = self.d2(torch.cat([self.u2(d3), e2], 1))
            d1 = self.d1(torch.cat([self.u1(d2), e1], 1))
            return self.out(d1)

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    lo, hi = np.percentile(train_img, [1, 99.8])
    x = ((train_img - lo) / (hi - lo)).astype(np.float32)
    y = (train_lbl > 0).astype(np.int64)
    model, n, p = UNet(), len(x), 128
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        xs, ys = [], []
        for _ in range(8):
            i, r, c = rng.integers(n), rng.integers(x.shape[1] - p + 1), rng.integers(x.shape[2] - p + 1)
            a, b = x[i, r : r + p, c : c + p], y[i, r : r + p, c : c + p]
            if rng.random() < 0.5:
                a, b = a[:, ::-1], b[:, ::-1]
            if rng.random() < 0.5:
                a, b = a[::-1], b[::-1]
            xs.append(a.copy())
            ys.append(b.copy())
        loss = F.cross_entropy(model(torch.from_numpy(np.stack(xs))[:, None]), torch.from_numpy(np.stack(ys)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    lo, hi = np.percentile(test_img, [1, 99.8])
    out = np.zeros(test_img.shape, dtype=np.uint32)
    with torch.inference_mode():
        for i, frame in enumerate(test_img):
            t = torch.from_numpy(((frame - lo) / (hi - lo)).astype(np.float32))[None, None]
            fg = torch.softmax(model(t), 1)[0, 1].numpy() > 0.5
            out[i] = ndi.label(fg)[0]
    return out


def cli(*args: str) -> str:
    cmd = [sys.executable, "-m", "napari_bioimg.cli", *args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{res.stderr[-2000:]}")
    return res.stdout


def splits(img, lbl):
    yield "z-split", (img[4:19], lbl[4:19]), (img[19:34], lbl[19:34])
    yield "xy-split", (img[4:34, :, :128], lbl[4:34, :, :128]), (img[4:34, :, 128:], lbl[4:34, :, 128:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=120)
    ap.add_argument("--out", default="bench_output/segmentation")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    img = tifffile.imread(ROOT / "sample_data" / "nuclei_3d.tif")
    lbl = tifffile.imread(ROOT / "sample_data" / "nuclei_3d_labels.tif")
    rows = []
    for name, (tr_img, tr_lbl), (te_img, te_lbl) in splits(img, lbl):
        d = out / name
        d.mkdir(exist_ok=True)
        for fname, arr in (("train.tif", tr_img), ("train_labels.tif", tr_lbl), ("test.tif", te_img),
                           ("test_labels.tif", te_lbl)):
            tifffile.imwrite(d / fname, arr)
        t0 = time.perf_counter()
        cli("train", "--task", "instance", "--image", str(d / "train.tif"), "--labels", str(d / "train_labels.tif"),
            "--axes", "TYX", "--time-limit", str(args.time_limit), "--out", str(d / "model.pt"), "--quiet",
            "--device", args.device)
        t_train = time.perf_counter() - t0
        cli("predict", "--model", str(d / "model.pt"), "--image", str(d / "test.tif"), "--axes", "TYX",
            "--out", str(d / "pred.tif"), "--quiet", "--device", args.device)
        ours = json.loads(cli("evaluate", "--task", "instance", "--pred", str(d / "pred.tif"), "--truth",
                              str(d / "test_labels.tif"), "--axes", "TYX"))
        cli("predict", "--model", str(d / "model.pt"), "--image", str(d / "test.tif"), "--axes", "TYX", "--tta",
            "--out", str(d / "pred_tta.tif"), "--quiet", "--device", args.device)
        ours_tta = json.loads(cli("evaluate", "--task", "instance", "--pred", str(d / "pred_tta.tif"), "--truth",
                                  str(d / "test_labels.tif"), "--axes", "TYX"))
        tifffile.imwrite(d / "otsu.tif", otsu_watershed(te_img))
        base = json.loads(cli("evaluate", "--task", "instance", "--pred", str(d / "otsu.tif"), "--truth",
                              str(d / "test_labels.tif"), "--axes", "TYX"))
        tifffile.imwrite(d / "plain.tif", plain_unet(tr_img, tr_lbl, te_img, args.time_limit))
        plain = json.loads(cli("evaluate", "--task", "instance", "--pred", str(d / "plain.tif"), "--truth",
                               str(d / "test_labels.tif"), "--axes", "TYX"))
        for method, rep in (("napari-bioimg U-Net", ours), ("napari-bioimg U-Net, --tta", ours_tta), ("plain PyTorch U-Net", plain), ("Otsu + watershed", base)):
            th = rep["thresholds"]
            rows.append({"split": name, "method": method, "f1@0.5": th["0.5"]["f1"], "f1@0.7": th["0.7"]["f1"],
                         "f1@0.9": th["0.9"]["f1"], "precision@0.5": th["0.5"]["precision"],
                         "recall@0.5": th["0.5"]["recall"], "mean_ap": rep["mean_ap"], "n_true": rep["n_true"],
                         "n_pred": rep["n_pred"], "train_seconds": round(t_train, 1) if "U-Net" in method else None})
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    print("| split | method | F1@0.5 | F1@0.7 | F1@0.9 | P@0.5 | R@0.5 | mean AP(0.5:0.9) | objects true/pred |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['split']} | {r['method']} | {r['f1@0.5']:.3f} | {r['f1@0.7']:.3f} | {r['f1@0.9']:.3f} | "
              f"{r['precision@0.5']:.3f} | {r['recall@0.5']:.3f} | {r['mean_ap']:.3f} | {r['n_true']}/{r['n_pred']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
