"""Reference: the textbook 3-class U-Net for nuclei (background / interior / boundary) and a seeded watershed.

Nothing from napari-bioimg. The same network size as napari-bioimg's on a CPU (3 levels, 16 channels at the
top, BatchNorm), Adam 1e-3, random 128x128 crops with flips, batch 8, cross-entropy with the boundary class
weighted 5x, the given wall-clock budget (or number of steps). Targets: each object's 1-pixel inner boundary
(``find_boundaries(mode="inner")``, per 2D slice) is class 2, the rest of the object class 1. Instances: seeds
= connected components of P(interior) > 0.5 (under 8 pixels dropped), grown by a watershed on P(boundary)
inside P(background) < 0.5. Training items may be 2D (YX) images or stacks; every 2D slice is a training
sample. A 3D test item (ZYX) is predicted slice by slice and its seeds and watershed are 3D. The settings are
the literature's (Caicedo et al. 2019, Cytometry A), fixed once: none was tuned on any split of the suite.

    python -m benchmarks.references.ref_unet --train img1.tif lbl1.tif [img2.tif lbl2.tif ...] --test t.tif --out pred.tif \
        (--seconds 120 | --steps 400) [--threads 2] [--seed 0]
"""

import argparse
import json
import sys
import time

import numpy as np
import tifffile
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries, watershed

#: cross-entropy weights of background, interior, boundary
CLASS_WEIGHTS = (1.0, 1.0, 5.0)


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNet(nn.Module):
    def __init__(self, cin=1, cout=3, w=16):
        super().__init__()
        self.e1, self.e2, self.e3, self.b = block(cin, w), block(w, 2 * w), block(2 * w, 4 * w), block(4 * w, 8 * w)
        self.u3, self.d3 = nn.ConvTranspose2d(8 * w, 4 * w, 2, 2), block(8 * w, 4 * w)
        self.u2, self.d2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, 2), block(4 * w, 2 * w)
        self.u1, self.d1 = nn.ConvTranspose2d(2 * w, w, 2, 2), block(2 * w, w)
        self.out = nn.Conv2d(w, cout, 1)

    def forward(self, x):
        e1 = self.e1(x)
        e2 = self.e2(F.max_pool2d(e1, 2))
        e3 = self.e3(F.max_pool2d(e2, 2))
        b = self.b(F.max_pool2d(e3, 2))
        d3 = self.d3(torch.cat([self.u3(b), e3], 1))
        d2 = self.d2(torch.cat([self.u2(d3), e2], 1))
        return self.out(self.d1(torch.cat([self.u1(d2), e1], 1)))


def normalize(x):
    lo, hi = np.percentile(x, [1, 99.8])
    return ((x - lo) / (hi - lo + 1e-12)).astype(np.float32)


def predict_frames(model, frames, multiple=8):
    """Run a fully convolutional model on each 2D frame (reflect-padded to a multiple of 8)."""
    out = []
    with torch.inference_mode():
        for f in frames:
            h, w = f.shape
            ph, pw = -h % multiple, -w % multiple
            t = torch.from_numpy(np.pad(f, ((0, ph), (0, pw)), mode="reflect"))[None, None]
            out.append(model(t)[0, :, :h, :w].numpy())
    return np.stack(out)


def three_class(lbl2d: np.ndarray) -> np.ndarray:
    """0 background, 1 interior, 2 the object's inner boundary (which also separates touching objects)."""
    y = (lbl2d > 0).astype(np.int64)
    y[find_boundaries(lbl2d, mode="inner") & (lbl2d > 0)] = 2
    return y


def instances(prob: np.ndarray, min_seed: int = 8) -> np.ndarray:
    """Seeded watershed of ``prob`` (3, *spatial): seeds from the interior, grown over the boundary class."""
    seeds, _ = ndi.label(prob[1] > 0.5)
    sizes = np.bincount(seeds.ravel())
    seeds[sizes[seeds] < min_seed] = 0
    return watershed(prob[2], seeds, mask=prob[0] < 0.5).astype(np.uint32)


def train_and_predict(train, test, seconds, frames=False, seed=0, patch=128, max_steps=None):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    xs = [normalize(im).reshape(-1, *im.shape[-2:]) for im, _ in train]
    ys = [np.stack([three_class(s) for s in lb.reshape(-1, *lb.shape[-2:])]) for _, lb in train]
    x, y = np.concatenate(xs), np.concatenate(ys)
    p = min(patch, x.shape[1] // 8 * 8, x.shape[2] // 8 * 8)
    model = UNet()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    weight = torch.tensor(CLASS_WEIGHTS)
    start, steps = time.perf_counter(), 0
    while (steps < max_steps) if max_steps else (time.perf_counter() - start < seconds):
        bx, by = [], []
        for _ in range(8):
            i, r, c = rng.integers(len(x)), rng.integers(x.shape[1] - p + 1), rng.integers(x.shape[2] - p + 1)
            a, b = x[i, r:r + p, c:c + p], y[i, r:r + p, c:c + p]
            if rng.random() < 0.5:
                a, b = a[:, ::-1], b[:, ::-1]
            if rng.random() < 0.5:
                a, b = a[::-1], b[::-1]
            bx.append(a.copy())
            by.append(b.copy())
        loss = F.cross_entropy(model(torch.from_numpy(np.stack(bx))[:, None]), torch.from_numpy(np.stack(by)),
                               weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    model.eval()
    t = normalize(test)
    logits = predict_frames(model, t.reshape(-1, *t.shape[-2:]))
    prob = torch.softmax(torch.from_numpy(logits), 1).numpy()  # (slices, 3, Y, X)
    if frames:  # a stack of 2D frames: each frame on its own
        return np.stack([instances(pf) for pf in prob]), steps
    if test.ndim == 3:  # a 3D item predicted slice by slice: seeds and watershed in 3D
        return instances(prob.transpose(1, 0, 2, 3)), steps
    return instances(prob[0]), steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", nargs="+", required=True, help="image label image label ...")
    ap.add_argument("--test", required=True)
    ap.add_argument("--test-axes", default="", help="TYX: label each frame on its own")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--steps", type=int, help="train this many steps instead of --seconds")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    files = a.train
    train = [(tifffile.imread(files[i]), tifffile.imread(files[i + 1])) for i in range(0, len(files), 2)]
    test = tifffile.imread(a.test)
    t0 = time.perf_counter()
    pred, steps = train_and_predict(train, test, a.seconds, frames=a.test_axes.upper().startswith("T"),
                                    max_steps=a.steps, seed=a.seed)
    tifffile.imwrite(a.out, pred, compression="zlib")
    print(json.dumps({"steps": steps, "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    sys.exit(main())
