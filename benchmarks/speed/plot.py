"""Plot the benchmark results: peak memory vs image size, and throughput."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def plot(results: Path, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = json.loads(Path(results).read_text())
    points = data.get("memory_points", [])
    rows = {r["name"]: r for r in data["rows"]}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    ax = axes[0]
    mpx = [p["size"] ** 2 / 1e6 for p in points]
    ax.plot(mpx, [p["peak_rss_gib"] for p in points], "o-", label="peak RSS, block-by-block prediction")
    ax.plot(mpx, [p["size"] ** 2 * 2 / 2**30 for p in points], "s--", color="grey",
            label="the uint16 image itself")
    # what the in-memory path would hold: float32 input, 3 class maps and the blending weights (20 B/pixel)
    ax.plot(mpx, [p["size"] ** 2 * 20 / 2**30 for p in points], "^:", color="#c44e52",
            label="in-memory path's arrays (estimate)")
    ax.axhline(2.0, color="red", lw=1, ls=":", label="goal: 2 GiB")
    ax.set_xscale("log", base=2)
    ax.set_xticks(mpx, [f"{p['size'] // 1024}k²\n{m:.0f} MP" for p, m in zip(points, mpx)])
    ax.set_ylabel("GiB")
    top = max(3.0, max(p["peak_rss_gib"] for p in points) * 1.3)
    ax.set_ylim(0, top)
    for m, p in zip(mpx, points):
        need = p["size"] ** 2 * 20 / 2**30
        if need > top:
            ax.annotate(f"in memory: {need:.1f} GiB", (m, top * 0.97), ha="right", va="top", fontsize=7,
                        color="#c44e52")
    ax.set_title("Memory stays flat as the zarr image grows")
    ax.legend(fontsize=8)
    ax = axes[1]
    labels, values, colors = [], [], []
    for p in points:
        labels.append(f"zarr {p['size'] // 1024}k²\ninstances, small\nU-Net, with I/O")
        values.append(p["megapixels_per_s"])
        colors.append("#4c72b0")
    pred = rows.get("predict_vs_monai")
    if pred:
        side = int(pred["image"].split("x")[0])
        for name, seconds, color in (("ours", pred["ours"], "#55a868"), ("MONAI", pred["reference"], "#c44e52")):
            labels.append(f"{name}\n{pred['image']}\n(default U-Net)")
            values.append(side * side / seconds / 1e6)
            colors.append(color)
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)), labels, fontsize=6.5)
    ax.set_ylabel("megapixels / s")
    dev = data["environment"]["device"]
    ax.set_title(f"Throughput ({dev}, {data['environment']['threads']} threads)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    print(plot(Path(sys.argv[1]), Path(sys.argv[2])))
