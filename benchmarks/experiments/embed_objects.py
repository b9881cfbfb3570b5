"""Object embeddings: time for 10k objects on the CPU, and whether the map groups objects by kind.

Experiment of 2026-12-01 (issue 15). Answered: 10,000 objects embed in 51.2 s on one CPU thread (goal 60 s); the
features group four kinds (5-NN 0.998, PCA map 0.949) but untrained features do nearly as well (0.994 / 0.907):
``docs/explore.md``.

Synthetic objects on a grid (``--objects`` of them, 10,000 by default; about 2000x2000
pixels), four kinds that differ in shape or texture but not in mean brightness or
size: round and smooth, round and speckled, elongated, and hollow rings, each at a
random orientation, size (+-20%) and gain (+-25%), in Poisson-Gaussian noise. The
kind is never shown to the embedding; it only scores it afterwards:

* ``knn_features`` / ``knn_2d``: leave-one-out 5-nearest-neighbour accuracy of the
  kind in the feature space (standardised) and on the 2D map (chance: 0.25), on a
  random subset of 2,000 objects;
* the same for two baselines: the *untrained* autoencoder (random weights, same
  pipeline: is training worth its seconds?) and four hand-made measurements (area,
  mean and standard deviation of the intensity inside the object, bounding-box
  aspect).

    python -m benchmarks.experiments.embed_objects [--objects 10000] [--time-limit 20] [--reduction pca|umap|auto]
        [--threads 2] [--json bench_output/embed.json]

Prints one JSON object with the timings (``total_seconds`` is what the 60 s goal is about:
measuring, cutting, training, encoding and the 2D reduction, everything after the
arrays are in memory) and the scores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

KINDS = ("round", "speckled", "elongated", "ring")


def synthetic_objects(n: int, seed: int = 0, spacing: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (float32), labels (uint16/uint32) and the kind index of each label id (index 0 unused)."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    shape = (side * spacing, side * spacing)
    image = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.uint32 if n >= 65535 else np.uint16)
    kinds = np.zeros(n + 1, np.int64)
    r = 7
    yy, xx = np.mgrid[-r - 2:r + 3, -r - 2:r + 3].astype(np.float32)
    for k in range(1, n + 1):
        cy, cx = divmod(k - 1, side)
        cy, cx = cy * spacing + spacing // 2, cx * spacing + spacing // 2
        kind = int(rng.integers(len(KINDS)))
        scale = rng.uniform(0.8, 1.2)
        angle = rng.uniform(0, np.pi)
        u = (np.cos(angle) * yy + np.sin(angle) * xx) / scale
        v = (-np.sin(angle) * yy + np.cos(angle) * xx) / scale
        if kind == 2:
            inside = (u / 7.5) ** 2 + (v / 3.4) ** 2 < 1  # same area as a disc of radius 5
        else:
            inside = u**2 + v**2 < 25
        value = np.where(inside, 1.0, 0.0).astype(np.float32)
        if kind == 1:
            value = value * (0.3 + 1.4 * (rng.random(value.shape) < 0.5))  # speckles, same mean
        elif kind == 3:
            value = value * np.where(u**2 + v**2 < 6.25, 0.25, 1.33)  # hollow, about the same mean
        gain = rng.uniform(0.75, 1.25)
        sl = (slice(cy - r - 2, cy + r + 3), slice(cx - r - 2, cx + r + 3))
        image[sl] += 100 * gain * value
        labels[sl][inside] = k
        kinds[k] = kind
    noisy = rng.poisson(np.clip(image + 10, 0, None)).astype(np.float32) + rng.normal(0, 3, shape).astype(np.float32)
    return noisy, labels, kinds


def knn_accuracy(features: np.ndarray, y: np.ndarray, k: int = 5, n: int = 2000, seed: int = 0, scale: bool = False) -> float:
    """Leave-one-out k-NN accuracy on a random subset of ``n`` items (``scale``: standardise the features first)."""
    from napari_bioimg.core.analysis.reduce import standardize

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(y), min(n, len(y)), replace=False)
    f, yy = (standardize(features[pick]) if scale else features[pick].astype(np.float64)), y[pick]
    d = (f**2).sum(1)[:, None] + (f**2).sum(1)[None] - 2 * f @ f.T
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :k]
    votes = np.apply_along_axis(lambda v: np.bincount(v, minlength=len(KINDS)).argmax(), 1, yy[nearest])
    return round(float(np.mean(votes == yy)), 3)


def handmade_features(image: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    idx = ids.astype(np.int64)
    area = ndi.sum(np.ones_like(image), labels, idx)
    mean = ndi.mean(image, labels, idx)
    sd = ndi.standard_deviation(image, labels, idx)
    boxes = ndi.find_objects(labels)
    aspect = np.array([max((b[0].stop - b[0].start) / (b[1].stop - b[1].start),
                           (b[1].stop - b[1].start) / (b[0].stop - b[0].start)) for b in (boxes[i - 1] for i in idx)])
    return np.stack([area, mean, sd, aspect], axis=1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objects", type=int, default=10_000)
    p.add_argument("--time-limit", type=float, default=20.0, help="autoencoder training seconds (default 20)")
    p.add_argument("--reduction", default="pca", choices=("pca", "umap", "auto"))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    from napari_bioimg.core.analysis import EmbedConfig, embed_objects_sync, reduce_2d

    t = time.perf_counter()
    image, labels, kinds = synthetic_objects(args.objects, args.seed)
    make_s = time.perf_counter() - t
    config = EmbedConfig(time_limit=args.time_limit, reduction=args.reduction, seed=args.seed)
    t = time.perf_counter()
    emb = embed_objects_sync(image, labels, config)
    total = time.perf_counter() - t
    y = kinds[emb.ids]
    row = {"objects": int(len(emb.ids)), "image_shape": list(image.shape), "torch_threads": threads,
           "total_seconds": round(total, 2), "goal_seconds": 60, "met": total <= 60, "reduction": emb.reduction,
           **{k: v for k, v in emb.info.items() if k != "stopped_early"}, "synthetic_image_seconds": round(make_s, 2),
           "knn_features": knn_accuracy(emb.features, y), "knn_2d": knn_accuracy(emb.coords, y)}
    if not args.no_baselines:
        untrained = embed_objects_sync(image, labels, EmbedConfig(steps=1, learning_rate=1e-9, time_limit=None,
                                                                  reduction=args.reduction, seed=args.seed))
        row["untrained_knn_features"] = knn_accuracy(untrained.features, y)
        row["untrained_knn_2d"] = knn_accuracy(untrained.coords, y)
        hand = handmade_features(image, labels, emb.ids)
        row["handmade_knn_features"] = knn_accuracy(hand, y, scale=True)
        row["handmade_knn_2d"] = knn_accuracy(reduce_2d(hand, emb.reduction, args.seed)[0], y)
    print(json.dumps(row))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
