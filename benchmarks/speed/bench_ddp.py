"""Data-parallel training (``train --nproc``): 1 vs 2 processes at equal wall time, the all-reduce's share of a
step, and a scaling table on paper for 1-8 GPUs.

Measured here (CPU, gloo, the bundled nuclei stack):

* **1 vs 2 processes at equal wall time**: ``napari-bioimg train`` with the same ``--time-limit``, per-process
  ``--batch-size`` and seed, on two slices (8 and 24) of ``sample_data/nuclei_3d.tif``; each model is scored
  (F1 at IoU 0.5, :func:`matching`) on slice 16, which no run trains or validates on and nobody tuned on. The
  runs alternate (1, 2, 1, 2, ...) so that load from other jobs hits both alike; ``--seeds`` seeds each.
* **the all-reduce's share of a step**: in a 2-process gloo group (started by torch's launcher, as ``--nproc``
  does), the time of one all-reduce of a buffer the size of the network's gradients (what DDP reduces each
  step; DDP overlaps it with the backward pass, so this is the most it can cost) and of the small all-reduce
  that agrees on the budget and Stop, divided by the measured step time of the 2-process runs.

Modelled (on paper, not measured: no GPU here): step time on N GPUs = compute + ring all-reduce,
``t(N) = t_c + 2 (N-1)/N * bytes / bandwidth + 2 (N-1) * latency``, with ``bytes`` the gradient size (measured),
``t_c`` a GPU's step time estimated from the step's floating-point operations (counted here with torch's
``FlopCounterMode``) at an assumed achieved throughput, and NCCL bandwidths/latency assumed for PCIe and NVLink.
Speed-up = N * t(1) / t(N) images per second (weak scaling: the batch per GPU fixed).

Writes ``benchmarks/results/ddp-<date>.json`` (with ``uptime`` before and after). Not a timed test::

    python -m benchmarks.speed.bench_ddp                 # 3 seeds x 30 s per run
    python -m benchmarks.speed.bench_ddp --seconds 60 --seeds 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.common import RESULTS, SAMPLE, child_env

TRAIN_SLICES, TEST_SLICE = (8, 24), 16
DEPTH, WIDTH, PATCH, BATCH = 3, 16, 64, 4
MODEL = ["--depth", str(DEPTH), "--base-channels", str(WIDTH), "--patch-size", str(PATCH), "--batch-size", str(BATCH)]
#: Assumptions of the scaling table (not measured here): NCCL bus bandwidth (bytes/s), per-hop latency (s),
#: and the throughput a GPU achieves on this small U-Net's step (FLOP/s).
LINKS = {"PCIe 4.0": 12e9, "NVLink (H100)": 150e9}
LATENCY = 10e-6
GPU_FLOPS = 20e12
#: The batch the table assumes on a GPU (per GPU): FLOPs scale with the pixels of a fully convolutional U-Net.
GPU_BATCH, GPU_PATCH = 16, 256


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def env() -> dict:
    return child_env(OMP_WAIT_POLICY="PASSIVE")


def write_data(work: Path) -> None:
    import tifffile

    img = tifffile.imread(SAMPLE / "nuclei_3d.tif")
    lbl = tifffile.imread(SAMPLE / "nuclei_3d_labels.tif")
    for folder in ("imgs", "masks"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    for z in TRAIN_SLICES:
        tifffile.imwrite(work / "imgs" / f"z{z}.tif", img[z])
        tifffile.imwrite(work / "masks" / f"z{z}.tif", lbl[z])
    tifffile.imwrite(work / "test.tif", img[TEST_SLICE])
    tifffile.imwrite(work / "test_truth.tif", lbl[TEST_SLICE])


def train_once(work: Path, nproc: int, seconds: float, seed: int) -> dict:
    """One ``napari-bioimg train`` run and its model's F1 on the test slice."""
    import tifffile

    from napari_bioimg.core.formats.checkpoint import load_checkpoint
    from napari_bioimg.core.metrics import matching

    out = work / f"m{nproc}_{seed}.pt"
    cmd = [sys.executable, "-m", "napari_bioimg.cli", "train", "--image", str(work / "imgs"), "--labels",
           str(work / "masks"), "--out", str(out), "--time-limit", str(seconds), "--seed", str(seed), "--quiet",
           *MODEL] + (["--nproc", str(nproc)] if nproc > 1 else [])
    started = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, env=env())
    wall = time.perf_counter() - started
    if run.returncode:
        raise SystemExit(run.stderr)
    ckpt = load_checkpoint(out)
    steps, secs = ckpt["training"]["steps"], ckpt["training"]["seconds"]
    pred = work / f"p{nproc}_{seed}.tif"
    subprocess.run([sys.executable, "-m", "napari_bioimg.cli", "predict", "--model", str(out), "--image",
                    str(work / "test.tif"), "--out", str(pred), "--quiet"], check=True, capture_output=True,
                   env=env())
    f1 = matching(tifffile.imread(work / "test_truth.tif"), tifffile.imread(pred))["thresholds"]["0.5"]["f1"]
    return {"processes": nproc, "seed": seed, "steps": steps, "train_seconds": round(secs, 2),
            "steps_per_second": round(steps / secs, 3), "images_per_second": round(steps * BATCH * nproc / secs, 2),
            "test_f1@0.5": round(float(f1), 4), "wall_seconds": round(wall, 1)}


def model_and_step_flops() -> tuple[int, float]:
    """Gradient bytes of the benchmark's network and the FLOPs of one training step (forward + backward)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from napari_bioimg.core.models import get_model

    net = get_model("unet", spatial_dims=2, in_channels=1, out_channels=3, depth=DEPTH, base_channels=WIDTH)
    nbytes = sum(p.numel() for p in net.parameters()) * 4
    x = torch.randn(BATCH, 1, PATCH, PATCH)
    with FlopCounterMode(display=False) as counter:
        net(x).sum().backward()
    return nbytes, float(counter.get_total_flops())


def comm_member(nbytes: int, repeats: int) -> None:
    """One rank of the communication measurement (run by torch's launcher)."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    grad = torch.randn(nbytes // 4)
    agree = torch.zeros(2, dtype=torch.float64)
    times: dict[str, list[float]] = {"gradients": [], "agree": []}
    for i in range(repeats + 3):
        for name, t in (("gradients", grad), ("agree", agree)):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(t)
            if i >= 3:
                times[name].append(time.perf_counter() - start)
    if dist.get_rank() == 0:
        print(json.dumps({k: statistics.median(v) for k, v in times.items()}))
    dist.destroy_process_group()


def measure_comm(nbytes: int, repeats: int = 30) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", __spec__.name,
           "--comm-member", str(nbytes), "--repeats", str(repeats)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env(), check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def scaling_table(nbytes: int, flops: float) -> list[dict]:
    t_c = flops * (GPU_BATCH * GPU_PATCH**2) / (BATCH * PATCH**2) / GPU_FLOPS
    rows = []
    for link, bandwidth in LINKS.items():
        for n in range(1, 9):  # the gradients' ring all-reduce, and the small one that agrees on budget and Stop
            comm = 0.0 if n == 1 else 2 * (n - 1) / n * nbytes / bandwidth + 2 * 2 * (n - 1) * LATENCY
            rows.append({"link": link, "gpus": n, "compute_ms": round(1e3 * t_c, 3), "allreduce_ms": round(1e3 * comm, 3),
                         "speedup": round(n * t_c / (t_c + comm), 2), "efficiency": round(t_c / (t_c + comm), 3)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="training time limit of every run")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--comm-member", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=30, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.comm_member is not None:
        return comm_member(args.comm_member, args.repeats)
    load_before = uptime()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        work = Path(tmp)
        write_data(work)
        for seed in range(args.seeds):
            for nproc in (1, 2):  # alternating: the machine's load hits both alike
                runs.append(train_once(work, nproc, args.seconds, seed))
                print(json.dumps(runs[-1]), flush=True)
    nbytes, flops = model_and_step_flops()
    comm = measure_comm(nbytes)
    load_after = uptime()

    def summary(n: int) -> dict:
        sel = [r for r in runs if r["processes"] == n]
        out = {}
        for key in ("steps_per_second", "images_per_second", "test_f1@0.5"):
            values = [r[key] for r in sel]
            out[key] = {"mean": round(statistics.mean(values), 4),
                        "sd": round(statistics.stdev(values), 4) if len(values) > 1 else None}
        return out

    one, two = summary(1), summary(2)
    step2 = 1.0 / two["steps_per_second"]["mean"]
    result = {
        "benchmark": "bench_ddp", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other jobs), CPU only",
        "uptime_before": load_before, "uptime_after": load_after,
        "data": f"sample_data/nuclei_3d.tif: train slices {list(TRAIN_SLICES)} (the engine holds part apart for "
                f"validation), test slice {TEST_SLICE} with its labels (locked: not tuned on)",
        "settings": {"time_limit_s": args.seconds, "seeds": args.seeds, "flags": MODEL,
                     "threads": "2 for 1 process; 1 each for 2 processes (cores // N)"},
        "measured": {
            "runs": runs, "one_process": one, "two_processes": two,
            "ratio_2_vs_1": {"steps_per_second": round(two["steps_per_second"]["mean"] /
                                                       one["steps_per_second"]["mean"], 3),
                             "images_per_second": round(two["images_per_second"]["mean"] /
                                                        one["images_per_second"]["mean"], 3),
                             "test_f1@0.5": round(two["test_f1@0.5"]["mean"] / max(one["test_f1@0.5"]["mean"], 1e-9),
                                                  3)},
            "gradient_bytes": nbytes, "step_flops": flops,
            "allreduce_gradients_ms": round(1e3 * comm["gradients"], 3),
            "allreduce_agree_ms": round(1e3 * comm["agree"], 3),
            "step_ms_two_processes": round(1e3 * step2, 2),
            "allreduce_share_of_step": round((comm["gradients"] + comm["agree"]) / step2, 4),
        },
        "modelled": {
            "what": f"GPU step = FLOPs of a batch of {GPU_BATCH} x {GPU_PATCH}^2 per GPU (counted on this network, "
                    "scaled by pixels) / assumed throughput; ring all-reduce with assumed NCCL bus bandwidth and "
                    "latency; no overlap of communication with the backward pass (pessimistic)",
            "assumptions": {"gpu_flops_per_s": GPU_FLOPS, "bus_bandwidth_bytes_per_s": LINKS,
                            "latency_s_per_hop": LATENCY},
            "table": scaling_table(nbytes, flops),
        },
    }
    out = args.out or RESULTS / f"ddp-{datetime.now(timezone.utc):%Y-%m-%d}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result["measured"][k] for k in ("ratio_2_vs_1", "allreduce_share_of_step")}))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
