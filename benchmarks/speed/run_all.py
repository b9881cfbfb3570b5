"""All speed/scale benchmarks in one command; one JSON row per result on stdout.

    python -m benchmarks.speed.run_all                  # full run on the CPU (about 15-25 minutes on 2 cores)
    python -m benchmarks.speed.run_all --quick          # smaller sizes, fewer repeats (about 6 minutes)
    python -m benchmarks.speed.run_all --device cuda    # training, prediction, preview and memory on a GPU

Each row: ``{"name", "ours", "reference", "ratio", "unit", "reference_is", "goal", "met", ...}``.
``reference`` is measured side by side in the same run (a bare PyTorch loop, MONAI's
``sliding_window_inference``, this machine's fp32 matmul peak, the smallest image's
memory) unless ``reference_is`` says it is the goal itself. All rows are also
written to ``bench_output/benchmarks.json`` and a plot to ``docs/benchmarks.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from pathlib import Path

from benchmarks.common import OUTPUT, ROOT, emit

ALL = ("train", "predict", "preview", "memory", "gui")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--quick", action="store_true", help="smaller images and fewer repeats")
    p.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    p.add_argument("--out", default=str(OUTPUT / "benchmarks.json"))
    p.add_argument("--plot", default=str(ROOT / "docs" / "benchmarks.png"), help="plot file ('' = none)")
    args = p.parse_args(argv)
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("napari-bioimg benchmarks: --device cuda but CUDA is not available here", file=sys.stderr)
        return 2
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    env = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "machine": platform.machine(), "device": args.device,
           "gpu": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else None}
    print(json.dumps({"environment": env}), flush=True)
    rows: list[dict] = []
    extra: dict = {}
    emitted = 0
    t0 = time.perf_counter()
    for name in only:
        try:
            if name == "train":
                from benchmarks.speed.bench_train import run as train

                rows += train(args.device, steps=6 if args.quick else 12)
            elif name == "predict":
                from benchmarks.speed.bench_predict import run as predict

                if args.device.startswith("cuda"):  # a GPU needs more tiles per batch to be busy
                    rows += predict(args.device, size=2048, batch=16, rounds=3)
                else:
                    rows += predict(args.device, size=512 if args.quick else 768, rounds=3 if args.quick else 5)
            elif name == "preview":
                from benchmarks.speed.bench_preview import run as preview

                rows += preview(args.device)
            elif name == "memory":
                from benchmarks.speed.bench_memory import run as memory

                sizes = (2048, 4096, 8192) if args.quick else (4096, 8192, 16384)
                new, extra["memory_points"] = memory(sizes, args.device)
                rows += new
            elif name == "gui":
                from benchmarks.speed.bench_gui import run as gui

                rows += gui(15 if args.quick else 30, args.device)
            else:
                print(f"unknown benchmark {name!r}; choose from {', '.join(ALL)}", file=sys.stderr)
                return 2
        except SystemExit as err:  # a benchmark's child failed: say so and carry on with the others
            print(f"benchmark {name} failed: {err}", file=sys.stderr)
        except Exception:
            traceback.print_exc()
        for r in rows[emitted:]:
            emit(r)
        emitted = len(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"environment": env, "date": time.strftime("%Y-%m-%d"), "rows": rows, **extra,
                               "seconds": round(time.perf_counter() - t0, 1)}, indent=2))
    if args.plot and "memory_points" in extra:
        from benchmarks.speed.plot import plot

        plot(out, Path(args.plot))
    print(json.dumps({"summary": {r["name"]: r["met"] for r in rows}, "written": str(out)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
