"""Shared helpers for the speed benchmarks: result rows, timing, sample images, model files."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))


def row(name: str, ours: float, reference: float | None, *, unit: str, goal: str, met: bool | None,
        reference_is: str = "measured", **extra) -> dict:
    """One JSON result: ``ratio = ours / reference`` and whether the goal is met."""
    ratio = None if not reference else ours / reference
    return {"name": name, "ours": round(float(ours), 4), "reference": None if reference is None else
            round(float(reference), 4), "ratio": None if ratio is None else round(ratio, 4), "unit": unit,
            "reference_is": reference_is, "goal": goal, "met": met, **extra}


def emit(r: dict) -> None:
    print(json.dumps(r), flush=True)


def nuclei_2d(size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Real nuclei: one in-focus slice of the bundled stack (256x256), tiled (mirrored) up to ``size``."""
    import tifffile

    img = tifffile.imread(ROOT / "sample_data" / "nuclei_3d.tif")[14]
    lbl = tifffile.imread(ROOT / "sample_data" / "nuclei_3d_labels.tif")[14]
    if size is None:
        return img, lbl
    reps = int(np.ceil(size / img.shape[0]))
    tile_img = np.block([[img if (i + j) % 2 == 0 else img[::-1, ::-1] for j in range(reps)] for i in range(reps)])
    tile_lbl = np.block([[lbl if (i + j) % 2 == 0 else lbl[::-1, ::-1] for j in range(reps)] for i in range(reps)])
    return tile_img[:size, :size], tile_lbl[:size, :size]


def best_of(fn, repeats: int = 3) -> float:
    """Shortest wall time of ``repeats`` calls (the least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_peak_gflops(device: str = "cpu", n: int = 4096, repeats: int = 3, dtype=None) -> float:
    """This machine's matrix-multiply throughput (fp32 unless ``dtype``), measured now (GFLOP/s)."""
    import torch

    dtype = dtype or torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def run():
        for _ in range(10 if device.startswith("cuda") else 1):
            torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    run()
    return (10 if device.startswith("cuda") else 1) * 2 * n**3 / best_of(run, repeats) / 1e9
