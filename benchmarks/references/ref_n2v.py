"""Reference: a plain Noise2Void script (Krull et al. 2019), nothing from napari-bioimg.

The same textbook U-Net as ref_unet.py (1 output channel, no final activation). Random 64x64 patches with
flips, batch 16; in each patch ~1.5% of the pixels are masked and replaced by a random other pixel of
their 5x5 neighbourhood; the loss is the MSE at the masked pixels only. Adam 4e-4, the given wall-clock
budget. The image is standardised by its mean and standard deviation. Trained on the noisy image itself
(every 2D frame of a stack is a sample); predicts every frame whole.

    python -m benchmarks.references.ref_n2v --image noisy.tif --out denoised.tif --seconds 120 [--threads 2] [--seed 0]
"""

import argparse
import json
import time

import numpy as np
import tifffile
import torch

from benchmarks.references.ref_unet import UNet, predict_frames


def n2v(noisy, seconds, seed=0, patch=64, batch=16, frac=0.015, max_steps=None):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mean, std = float(noisy.mean()), float(noisy.std())
    x = ((noisy - mean) / std).astype(np.float32).reshape(-1, *noisy.shape[-2:])
    p = min(patch, x.shape[1] // 8 * 8, x.shape[2] // 8 * 8)
    n_mask = max(1, int(frac * p * p))
    model = UNet(cout=1)
    opt = torch.optim.Adam(model.parameters(), 4e-4)
    start, steps = time.perf_counter(), 0
    while (steps < max_steps) if max_steps else (time.perf_counter() - start < seconds):
        inp, tgt, msk = [], [], []
        for _ in range(batch):
            i, r, c = rng.integers(len(x)), rng.integers(x.shape[1] - p + 1), rng.integers(x.shape[2] - p + 1)
            a = x[i, r:r + p, c:c + p]
            if rng.random() < 0.5:
                a = a[:, ::-1]
            if rng.random() < 0.5:
                a = a[::-1]
            a = a.copy()
            ys, xs = rng.integers(0, p, n_mask), rng.integers(0, p, n_mask)
            dy, dx = rng.integers(-2, 3, n_mask), rng.integers(-2, 3, n_mask)
            same = (dy == 0) & (dx == 0)
            dx[same] = rng.choice([-1, 1], int(same.sum()))  # never the pixel itself
            m = np.zeros((p, p), np.float32)
            m[ys, xs] = 1
            corrupted = a.copy()
            corrupted[ys, xs] = a[np.clip(ys + dy, 0, p - 1), np.clip(xs + dx, 0, p - 1)]
            inp.append(corrupted)
            tgt.append(a)
            msk.append(m)
        inp, tgt, msk = (torch.from_numpy(np.stack(v))[:, None] for v in (inp, tgt, msk))
        loss = ((model(inp) - tgt) ** 2 * msk).sum() / msk.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    model.eval()
    out = predict_frames(model, x)[:, 0] * std + mean
    return out.reshape(noisy.shape).astype(np.float32), steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--steps", type=int, help="train this many steps instead of --seconds")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    out, steps = n2v(tifffile.imread(a.image).astype(np.float32), a.seconds, seed=a.seed, max_steps=a.steps)
    tifffile.imwrite(a.out, out)
    print(json.dumps({"steps": steps, "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
