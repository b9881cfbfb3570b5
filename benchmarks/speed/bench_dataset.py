"""Sampling training batches from a data set of many zarr images: peak memory and batch time vs one image.

Writes ``--images`` images of ``--side``² (uint16, real nuclei tiled and mirrored, camera-like
noise, a different offset per image) and their instance masks as zarr stores, then, each in
a fresh process, opens the first 1, 10, ... of them as a :class:`DataSet` (lazily, through
:func:`collect`), fits the per-image normalisation, scans the annotations, splits off
validation images and times ``--batches`` training batches (instance targets, patch 128,
batch 8, augmentation on). Peak resident memory (``VmHWM``, torch included) is measured in a
fresh process per set size; batch times in one process that opens every set size and draws
their batches in turn (round robin), so load from other jobs on a shared machine hits all
alike, today's in-memory ``PatchSampler`` over one image joining the rotation for context. The
goals: peak RSS flat in the number of images (<= 2 GiB) and the batch time of the largest set
within 1.1x of the one-image case.

Prints one JSON row per result (``benchmarks.common.row``), then the raw points. Not a timed test::

    python -m benchmarks.speed.bench_dataset                     # 100 images of 1024², chunks 256²
    python -m benchmarks.speed.bench_dataset --side 4096 --chunk 512 --work bench_output/dataset4096   # 6 GiB
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import OUTPUT, emit, nuclei_2d, row, run_module
from benchmarks.speed.bench_memory import peak_rss_gib


def make_set(work: Path, n: int, side: int, chunk: int) -> tuple[list[Path], list[Path]]:
    """``n`` image/mask zarr pairs (reused when already written with the same settings)."""
    import zarr

    stamp = work / "settings.json"
    settings = {"n": n, "side": side, "chunk": chunk}
    images = [work / "imgs" / f"img_{i:03d}.zarr" for i in range(n)]
    masks = [work / "masks" / f"img_{i:03d}.zarr" for i in range(n)]
    if stamp.exists() and json.loads(stamp.read_text()) == settings and all(p.exists() for p in images + masks):
        return images, masks
    shutil.rmtree(work, ignore_errors=True)
    base, lbl = nuclei_2d(2 * side)
    rng = np.random.default_rng(0)
    for i, (ip, mp) in enumerate(zip(images, masks)):
        oy, ox = (i * 97) % side, (i * 61) % side
        img = base[oy : oy + side, ox : ox + side].astype(np.float32)
        img = np.clip(img + rng.normal(0, 0.03 * float(img.max()), img.shape), 0, 65535).astype(np.uint16)
        for path, data, dtype in ((ip, img, "uint16"), (mp, lbl[oy : oy + side, ox : ox + side], "uint16")):
            arr = zarr.create_array(store=str(path), shape=data.shape, chunks=(chunk, chunk), dtype=dtype,
                                    overwrite=True)
            arr[:] = data.astype(dtype)
    stamp.write_text(json.dumps(settings))
    return images, masks


def open_sampler(work: str, n: int, patch: int, task: str):
    """The first ``n`` images as a data set (normalised, annotations scanned, split) and its sampler."""
    from napari_bioimg.core.data.collect import collect
    from napari_bioimg.core.data.targets import targets_for

    root = Path(work)
    images = sorted((root / "imgs").iterdir())[:n]
    masks = sorted((root / "masks").iterdir())[:n] if task != "denoise" else []
    t = time.perf_counter()
    ds = collect(images, masks).open()
    ds.fit_normalization()
    t_norm = time.perf_counter() - t
    split = ds.split(0.15, needs="image" if task == "denoise" else "labels")
    sampler = ds.sampler((patch, patch), targets_for(task), np.random.default_rng(n), split=split,
                         focus=0.7, rescale=task != "denoise", intensity=task != "denoise")
    return sampler, {"setup_s": time.perf_counter() - t, "normalize_s": t_norm, "split": split.mode,
                     "held_out": len(split.held)}


def child_memory(work: str, n: int, batches: int, batch_size: int, patch: int, task: str) -> dict:
    """Runs in a fresh process: peak memory of opening ``n`` images and drawing ``batches`` batches."""
    import torch

    torch.set_num_threads(1)
    base = peak_rss_gib()
    sampler, info = open_sampler(work, n, patch, task)
    for _ in range(batches):
        sampler.sample(batch_size)
    return dict(info, n_images=n, task=task, peak_rss_gib=peak_rss_gib(), rss_after_imports_gib=base)


def child_timing(work: str, counts: list[int], batches: int, batch_size: int, patch: int, task: str,
                 side: int) -> dict:
    """Runs in a fresh process: batch times of every set size, interleaved batch by batch.

    Each round draws one batch from every sampler (in a rotating order), so load from other
    jobs on a shared machine falls on all set sizes alike; today's in-memory ``PatchSampler``
    over one image joins the rotation as a reference.
    """
    import torch

    torch.set_num_threads(1)  # batch assembly is numpy/zarr work; one thread keeps timings steady
    samplers = {str(n): open_sampler(work, n, patch, task)[0] for n in counts}
    if task != "denoise":
        samplers["in-memory"] = in_memory_sampler(side, patch)
    names = list(samplers)
    for name in names:  # warm up
        for _ in range(3):
            samplers[name].sample(batch_size, "cpu")
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(batches):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t = time.perf_counter()
            samplers[name].sample(batch_size, "cpu")
            times[name].append(time.perf_counter() - t)
    return {name: {"median_ms": 1000 * statistics.median(v), "mean_ms": 1000 * statistics.mean(v)}
            for name, v in times.items()}


def in_memory_sampler(side: int, patch: int):
    """Today's one-image path: a PatchSampler over one in-memory image (the nuclei, tiled to ``side``)."""
    from napari_bioimg.core.data.normalize import Normalizer
    from napari_bioimg.core.data.patches import PatchSampler
    from napari_bioimg.core.tasks.segmentation import instance_targets

    img, lbl = nuclei_2d(side)
    x = Normalizer().fit(img[None, None]).apply(img[None, None])
    return PatchSampler(x, instance_targets(lbl[None]), lbl[None] > 0, (patch, patch), np.random.default_rng(0),
                        focus=0.7)


def run_child(*args) -> dict:
    res = run_module(__spec__.name, *args)
    if res.returncode != 0:
        raise SystemExit(f"child {args[:3]} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--counts", type=int, nargs="+", help="set sizes to compare (default: 1, 10, --images)")
    ap.add_argument("--batches", type=int, default=100, help="timed batches per set size (interleaved)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--task", default="instance", choices=("instance", "semantic", "denoise"))
    ap.add_argument("--work", type=Path, default=OUTPUT / "dataset")
    args = ap.parse_args()
    counts = args.counts or sorted({1, min(10, args.images), args.images})
    make_set(args.work, args.images, args.side, args.chunk)
    work = args.work.resolve()
    memory = {n: run_child("memory", work, n, 30, args.batch_size, args.patch, args.task) for n in counts}
    timing = run_child("timing", work, ",".join(map(str, counts)), args.batches, args.batch_size, args.patch,
                       args.task, args.side)
    one, many = memory[counts[0]], memory[counts[-1]]
    t_one, t_many = timing[str(counts[0])]["median_ms"], timing[str(counts[-1])]["median_ms"]
    total_gib = args.images * args.side**2 * 2 * (1 if args.task == "denoise" else 2) / 2**30
    shape = f"{args.images} zarr images of {args.side}² (chunks {args.chunk}²), {args.task} targets"
    emit(row(f"dataset_sampling_peak_rss_{counts[-1]}_images", many["peak_rss_gib"], one["peak_rss_gib"],
             unit="GiB", goal="<= 2 GiB and flat in the number of images (<= 10% above one image)",
             met=many["peak_rss_gib"] <= 2 and many["peak_rss_gib"] <= 1.1 * one["peak_rss_gib"],
             reference_is="peak RSS with one image (fresh process each)", data=shape,
             data_uncompressed_gib=round(total_gib, 2),
             per_count={n: round(m["peak_rss_gib"], 3) for n, m in memory.items()},
             rss_after_imports_gib=round(one["rss_after_imports_gib"], 3),
             setup_s={n: round(m["setup_s"], 2) for n, m in memory.items()}))
    emit(row(f"dataset_sampling_batch_time_{counts[-1]}_images", t_many, t_one, unit="ms",
             goal="<= 1.1x the one-image batch time", met=t_many <= 1.1 * t_one,
             reference_is="median batch time with one image (same lazy path, batches interleaved in one process)",
             data=shape, batch=f"{args.batch_size} x {args.patch}²",
             per_count={k: round(v["median_ms"], 2) for k, v in timing.items()}))
    if "in-memory" in timing:
        emit(row("dataset_sampling_vs_in_memory_patchsampler", t_many, timing["in-memory"]["median_ms"], unit="ms",
                 goal="context: lazy reads across images vs one image held in memory", met=None,
                 reference_is="PatchSampler over one in-memory image (today's path), same rotation"))
    for n, m in memory.items():
        print(json.dumps(dict(m, **{"batch_" + k: round(v, 2) for k, v in timing[str(n)].items()})))


if __name__ == "__main__":
    if sys.argv[1:2] == ["memory"]:
        w, n, b, bs, p, task = sys.argv[2:8]
        print(json.dumps(child_memory(w, int(n), int(b), int(bs), int(p), task)))
    elif sys.argv[1:2] == ["timing"]:
        w, counts, b, bs, p, task, side = sys.argv[2:9]
        print(json.dumps(child_timing(w, [int(c) for c in counts.split(",")], int(b), int(bs), int(p), task,
                                      int(side))))
    else:
        main()
