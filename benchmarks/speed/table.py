"""Render ``bench_output/benchmarks.json`` as the Markdown table in the README.

    python -m benchmarks.speed.table [bench_output/benchmarks.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.common import OUTPUT

LABELS = {
    "train_step_time": "training step vs a bare PyTorch loop (same U-Net, batch 8 of 128²)",
    "predict_vs_monai": "tiled prediction vs MONAI `sliding_window_inference` (the same prepared model, 256² tiles, "
                        "25% overlap, Gaussian blending)",
    "prepared_model_gain_in_monai": "… folding batch-norm + channels-last, MONAI's tiler both times (prepared / plain)",
    "predict_gflops_vs_matmul_peak": "achieved convolution GFLOP/s in tiled prediction vs this CPU's fp32 matmul peak",
    "predict_gflops_vs_matmul_peak_compiled": "… the same with `predict --compile` (torch.compile, frozen weights)",
    "lone_conv3x3_16ch_gflops_vs_matmul_peak": "… a lone 16-channel 3×3 convolution vs the same peak (ceiling)",
    "time_to_first_preview_512px": "Train → first live prediction, 512² (engine)",
    "gui_worst_stall_while_training": "worst GUI event-loop stall while training, real napari viewer (QTimer probe)",
    "gui_worst_stall_while_training_camera_moving": "… with the camera panning and zooming every 100 ms",
}


def fmt(v, unit: str) -> str:
    if v is None:
        return "–"
    if unit == "GiB":
        return f"{v:.2f} GiB"
    if unit == "ms":
        return f"{v:.0f} ms"
    if unit == "GFLOP/s":
        return f"{v:.0f} GFLOP/s"
    return f"{v:.3g} {unit.split('/')[0]}"


def table(data: dict) -> str:
    lines = ["| benchmark | ours | reference | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for r in data["rows"]:
        name = r["name"]
        label = LABELS.get(name)
        if name.startswith("predict_zarr_peak_rss"):
            sizes = r.get("per_size", {})
            label = ("peak RSS predicting uint16 zarr images " + " / ".join(f"{int(k) // 1024}k²" for k in sizes)
                     + ": " + " / ".join(f"{v:.2f}" for v in sizes.values()) + " GiB; reference = the previous size")
        ref = "goal" if r.get("reference_is") == "goal" else fmt(r["reference"], r["unit"])
        met = {True: "yes", False: "**no**", None: "(info)"}[r["met"]]
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {label or name} | {fmt(r['ours'], r['unit'])} | {ref} | {ratio} | {r['goal']} | {met} |")
    env = data["environment"]
    lines.append("")
    lines.append(f"Measured {data.get('date', '')} with Python {env['python']}, torch {env['torch']}, "
                 f"{env['threads']} threads on {env['device']} ({env['machine']}); the whole run took "
                 f"{data.get('seconds', 0) / 60:.0f} min.")
    return "\n".join(lines)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT / "benchmarks.json"
    print(table(json.loads(path.read_text())))
