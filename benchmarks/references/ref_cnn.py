"""Reference: a plain PyTorch CNN classifying objects from image crops around their centroids.

Nothing from napari-bioimg: 48x48 crops of the percentile-normalised image (no mask channel), three
conv-ReLU-maxpool layers and a linear head, Adam 1e-3, batches of 32 drawn from the annotated objects,
flips as augmentation, the given wall-clock budget.

    python -m benchmarks.references.ref_cnn --image img.tif --labels objects.tif --classes train.csv --out pred.csv --seconds 60
"""

import argparse
import csv
import json
import time

import numpy as np
import tifffile
import torch
from scipy import ndimage as ndi
from torch import nn
from torch.nn import functional as F

CROP = 48


class PlainCNN(nn.Module):
    def __init__(self, n_classes):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1),
                                    nn.Conv2d(32, 64, 3, padding=1)])
        self.head = nn.Linear(64 * (CROP // 8) ** 2, n_classes)

    def forward(self, x):
        for c in self.convs:
            x = F.max_pool2d(F.relu(c(x)), 2)
        return self.head(x.flatten(1))


def crops(img, objects, ids):
    """(N, 1, CROP, CROP) crops centred on each object; img/objects are 2D or a stack of 2D frames."""
    img = img.reshape(-1, *img.shape[-2:]).astype(np.float32)
    objects = objects.reshape(-1, *objects.shape[-2:])
    lo, hi = np.percentile(img, [1, 99.8])
    h = CROP // 2
    padded = np.pad((img - lo) / (hi - lo), ((0, 0), (h, h), (h, h)))
    present = [int(i) for i in np.unique(objects) if i]
    index = {i: k for k, i in enumerate(present)}
    centres = ndi.center_of_mass(np.ones(objects.shape), objects, present)
    out = np.empty((len(ids), 1, CROP, CROP), np.float32)
    for n, i in enumerate(ids):
        t, cy, cx = (int(round(c)) for c in centres[index[int(i)]])
        out[n, 0] = padded[t, cy:cy + CROP, cx:cx + CROP]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--classes", required=True, help="CSV label_id,class of the training objects")
    ap.add_argument("--predict", required=True, help="CSV whose label_id column lists the objects to classify")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--steps", type=int, help="train this many steps instead of --seconds")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    with open(a.classes) as f:
        rows = list(csv.DictReader(f))
    with open(a.predict) as f:
        test_ids = [int(r["label_id"]) for r in csv.DictReader(f)]
    names = sorted({r["class"] for r in rows})
    img, objects = tifffile.imread(a.image), tifffile.imread(a.labels)
    x = torch.from_numpy(crops(img, objects, [int(r["label_id"]) for r in rows]))
    y = torch.tensor([names.index(r["class"]) for r in rows])
    model = PlainCNN(len(names))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    t0, steps = time.perf_counter(), 0
    while (steps < a.steps) if a.steps else (time.perf_counter() - t0 < a.seconds):
        b = torch.from_numpy(rng.choice(len(x), 32))
        xb = x[b]
        if rng.random() < 0.5:
            xb = xb.flip(-1)
        if rng.random() < 0.5:
            xb = xb.flip(-2)
        loss = F.cross_entropy(model(xb), y[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(crops(img, objects, test_ids))).argmax(1).numpy()
    with open(a.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label_id", "class"])
        w.writerows((i, names[k]) for i, k in zip(test_ids, pred))
    print(json.dumps({"steps": steps, "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
