"""The one helper module the benchmarks share: where things are, how to start a child process of this checkout,
result rows, timing and the sample image.

The benchmarks are a package run from the repository root as modules, e.g.
``python -m benchmarks.speed.run_all --quick``, with napari-bioimg importable (installed, as ``scripts/bench.sh``
does with ``pip install -e``, or ``PYTHONPATH=src``). No script changes ``sys.path``; child processes get this
checkout's ``src`` and root on their ``PYTHONPATH`` (:func:`child_env`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
"""The repository root."""
BENCH = ROOT / "benchmarks"
DATA = BENCH / "data"
"""Images with ground truth for the quality suite (sources and licences: ``data/README.md``)."""
RESULTS = BENCH / "results"
"""Committed results files (cited by the README and docs: never renamed)."""
SAMPLE = ROOT / "sample_data"
OUTPUT = ROOT / "bench_output"
"""Scratch output of the benchmarks (not committed)."""


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this checkout's ``src`` (so the child runs the same engine as the
    parent) and its root (so ``python -m benchmarks...`` resolves) first on ``PYTHONPATH``; ``extra`` on top."""
    path = [str(ROOT / "src"), str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path), **extra)


def module_cmd(module: str, *args) -> list[str]:
    """The command line that runs ``python -m MODULE ARGS`` with this interpreter (``module`` is a dotted name:
    pass a module's ``__spec__.name`` to re-run itself as a child)."""
    return [sys.executable, "-m", module, *map(str, args)]


def run_module(module: str, *args, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m MODULE ARGS`` from the repository root with :func:`child_env`; output captured as text."""
    kwargs.setdefault("env", child_env())
    return subprocess.run(module_cmd(module, *args), capture_output=True, text=True, cwd=ROOT, **kwargs)


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

    img = tifffile.imread(SAMPLE / "nuclei_3d.tif")[14]
    lbl = tifffile.imread(SAMPLE / "nuclei_3d_labels.tif")[14]
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
