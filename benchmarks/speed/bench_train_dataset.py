"""Training on a data set of many zarr images: peak memory and optimizer-step time vs one image.

Uses the set of :mod:`benchmarks.speed.bench_dataset` (``--images`` images of ``--side``², uint16 real nuclei
tiled with noise, instance masks, zarr chunks ``--chunk``²) and trains the default instance
U-Net (batch 8 of 128², augmentation on) for ``--steps`` optimizer steps through the engine's
``train`` generator, in a fresh process per run:

* ``one image``: the first image alone (it fits in memory: the one-image path);
* ``N images``: the first N images, read patch by patch (``DataSetSampler``), with the next
  batch prepared during the step (``Prefetch``), and once more without it (context).

Runs alternate (one, N, N without prefetch, one, ...) ``--repeats`` times, so load from
other jobs on a shared machine falls on all alike. Step time is the median time between
consecutive ``StepDone`` events (steps right after a validation left out); the CPU time of
the whole process per step (every thread: reading patches ahead included) comes with it,
steadier than wall time on a busy machine. Peak resident
memory (``VmHWM``, torch included) per run. Goals: peak RSS flat in the number of images
(<= 2 GiB) and the median step time of the largest set within 1.1x of one image.

Prints one JSON row per result (``benchmarks.common.row``), then the raw runs. Not a timed test::

    python -m benchmarks.speed.bench_train_dataset                 # 100 x 1024², ~15 min on 2 busy cores
    python -m benchmarks.speed.bench_train_dataset --counts 1 10 100 --steps 60 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from benchmarks.common import OUTPUT, emit, row, run_module
from benchmarks.speed.bench_dataset import make_set
from benchmarks.speed.bench_memory import peak_rss_gib


def child_run(work: str, n: int, steps: int, prefetch: bool, threads: int) -> dict:
    """Runs in a fresh process: train on the first ``n`` images; step times and peak memory."""
    import torch

    from napari_bioimg.core import TrainConfig, train
    from napari_bioimg.core import events as E
    from napari_bioimg.core.data.collect import collect
    from napari_bioimg.core.training import setup as sets

    torch.set_num_threads(threads)
    sets.PREFETCH = prefetch
    base = peak_rss_gib()
    root = Path(work)
    t0 = time.perf_counter()
    ds = collect(sorted((root / "imgs").iterdir())[:n], sorted((root / "masks").iterdir())[:n]).open()
    config = TrainConfig(task="instance", time_limit=None, epochs=1, steps_per_epoch=steps, seed=0, preview_every=0)
    stamps, after_val, set_up_s = [], set(), None
    for ev in train(ds, None, config, preview_index=None):
        now = time.perf_counter()
        if isinstance(ev, E.TrainingStarted):
            set_up_s = now - t0
            stamps.append(("start", now, time.process_time()))
        elif isinstance(ev, E.StepDone):
            stamps.append((ev.step, now, time.process_time()))
        elif isinstance(ev, E.ValidationDone):
            after_val.add(ev.step + 1)
    pairs = [(a, b) for a, b in zip(stamps, stamps[1:]) if b[0] not in after_val and b[0] != 1]  # 1: warm-up
    step_times = [b[1] - a[1] for a, b in pairs]
    cpu_times = [b[2] - a[2] for a, b in pairs]  # all threads of the process: reading patches included
    return {"n_images": n, "prefetch": prefetch, "steps": len(step_times) + 1, "set_up_s": round(set_up_s, 2),
            "median_step_s": statistics.median(step_times), "mean_step_s": statistics.mean(step_times),
            "median_cpu_step_s": statistics.median(cpu_times),
            "peak_rss_gib": peak_rss_gib(), "rss_after_imports_gib": base, "load": os.getloadavg()[0]}


def run_child(*args) -> dict:
    res = run_module(__spec__.name, "child", *args)
    if res.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--counts", type=int, nargs="+", help="set sizes (default: 1 and --images)")
    ap.add_argument("--steps", type=int, default=50, help="optimizer steps per run")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--no-context", action="store_true", help="skip the runs without prefetching")
    ap.add_argument("--work", type=Path, default=OUTPUT / "dataset")
    args = ap.parse_args()
    counts = args.counts or sorted({1, args.images})
    make_set(args.work, args.images, args.side, args.chunk)
    work = args.work.resolve()
    cases = [(n, True) for n in counts] + ([] if args.no_context else [(counts[-1], False)])
    runs: dict[tuple[int, bool], list[dict]] = {c: [] for c in cases}
    t0 = time.time()
    for _ in range(args.repeats):
        for n, prefetch in cases:
            runs[(n, prefetch)].append(run_child(work, n, args.steps, prefetch, args.threads))
    med = {c: statistics.median(r["median_step_s"] for r in v) for c, v in runs.items()}
    cpu = {c: statistics.median(r["median_cpu_step_s"] for r in v) for c, v in runs.items()}
    rss = {c: max(r["peak_rss_gib"] for r in v) for c, v in runs.items()}
    one, many = (counts[0], True), (counts[-1], True)
    data = f"{args.images} zarr images of {args.side}² (chunks {args.chunk}²), instance U-Net, batch 8 x 128²"
    load = [round(r["load"], 1) for v in runs.values() for r in v]
    emit(row(f"train_dataset_peak_rss_{counts[-1]}_images", rss[many], rss[one], unit="GiB",
             goal="<= 2 GiB and flat in the number of images", met=rss[many] <= 2,
             reference_is=f"peak RSS training on {counts[0]} image(s) (fresh process each)", data=data,
             per_count={n: round(rss[(n, True)], 3) for n in counts},
             rss_after_imports_gib=round(runs[one][0]["rss_after_imports_gib"], 3)))
    emit(row(f"train_dataset_step_time_{counts[-1]}_images", med[many], med[one], unit="s",
             goal="<= 1.1x the one-image step", met=med[many] <= 1.1 * med[one],
             reference_is=f"median optimizer step training on {counts[0]} image(s) (in memory)", data=data,
             per_count={n: round(med[(n, True)], 4) for n in counts}, threads=args.threads, load_avg_1min=load,
             cpu_seconds_per_step={f"{n}{'' if p else ' no prefetch'}": round(v, 4) for (n, p), v in cpu.items()},
             set_up_s={f"{n}{'' if p else ' no prefetch'}": [r["set_up_s"] for r in v] for (n, p), v in runs.items()}))
    if (counts[-1], False) in med:
        emit(row(f"train_dataset_step_time_{counts[-1]}_images_without_prefetch", med[(counts[-1], False)], med[one],
                 unit="s", goal="context: the same set with every batch read during the step", met=None,
                 reference_is="median optimizer step on one image (in memory)"))
    for v in runs.values():
        for r in v:
            print(json.dumps(r))
    print(json.dumps({"total_minutes": round((time.time() - t0) / 60, 1)}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        w, n, steps, prefetch, threads = sys.argv[2:7]
        print(json.dumps(child_run(w, int(n), int(steps), prefetch == "True", int(threads))))
    else:
        main()
