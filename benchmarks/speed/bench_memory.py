"""Peak memory predicting zarr images of growing size (each size in a fresh process) and throughput.

The input is a uint16 zarr store (1024x1024 chunks) tiled from the real nuclei
slice with camera-like noise, written chunk by chunk. A child process predicts it
with an instance model into a zarr store (``predict --out PRED.zarr`` path) and
reports its peak resident memory (``VmHWM``, which includes torch itself),
the time and pixels per second.
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import OUTPUT, nuclei_2d, row, run_module

CHUNK = 1024


def make_input(path: Path, size: int, seed: int = 0) -> None:
    import zarr

    base, _ = nuclei_2d(2 * CHUNK)
    rng = np.random.default_rng(seed)
    arr = zarr.create_array(store=str(path), shape=(size, size), chunks=(CHUNK, CHUNK), dtype="uint16",
                            overwrite=True)
    for y in range(0, size, CHUNK):
        for x in range(0, size, CHUNK):
            oy, ox = (y // CHUNK) % 2 * CHUNK, (x // CHUNK) % 2 * CHUNK
            block = base[oy : oy + CHUNK, ox : ox + CHUNK].astype(np.float32)
            block = block + rng.normal(0, 0.02 * float(block.max()), block.shape)
            arr[y : y + CHUNK, x : x + CHUNK] = np.clip(block, 0, 65535).astype(np.uint16)


def ensure_model(path: Path, device: str = "cpu", seconds: float = 30.0) -> Path:
    """A small instance U-Net trained briefly on the real nuclei (reused when present)."""
    if path.exists():
        return path
    from napari_bioimg.core import TrainConfig, train_sync
    from napari_bioimg.core.formats.checkpoint import save_checkpoint

    img, lbl = nuclei_2d()
    cfg = TrainConfig(task="instance", time_limit=seconds, model_config={"depth": 2, "base_channels": 8},
                      batch_size=8, patch_size=128, preview_every=0, val_fraction=0, device=device)
    save_checkpoint(train_sync(img, lbl, cfg).checkpoint, path)
    return path


def peak_rss_gib() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it does not inherit the parent's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB -> GiB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def child(model: str, image: str, out: str, device: str) -> dict:
    """Runs in a fresh process: predict ``image`` into ``out``; report peak RSS and time."""
    import torch  # noqa: F401  (counted in the baseline, as in any real session)

    from napari_bioimg.core.control import drain
    from napari_bioimg.core.inference.predict import predict

    base = peak_rss_gib()
    t = time.perf_counter()
    result = drain(predict(model, image, out=out, device=device))  # a zarr out: block by block
    seconds = time.perf_counter() - t
    peak = peak_rss_gib()
    return {"peak_rss_gib": peak, "rss_after_imports_gib": base, "seconds": seconds,
            "pixels": int(np.prod(result.shape)), "objects": int(result[::8, ::8].max())}


def run(sizes=(4096, 8192, 16384), device: str = "cpu", work: Path | None = None) -> tuple[list[dict], list[dict]]:
    work = work or OUTPUT / "memory"
    work.mkdir(parents=True, exist_ok=True)
    model = ensure_model(work / "nuclei_small.pt", device)
    points = []
    for size in sizes:
        image, out = work / f"in_{size}.zarr", work / f"pred_{size}.zarr"
        make_input(image, size)
        res = run_module(__spec__.name, "child", model, image, out, device)
        if res.returncode != 0:
            raise SystemExit(f"memory child failed for {size}:\n{res.stderr[-3000:]}")
        point = json.loads(res.stdout.strip().splitlines()[-1])
        point.update(size=size, megapixels_per_s=point["pixels"] / point["seconds"] / 1e6)
        points.append(point)
        shutil.rmtree(image, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    first, prev, last = points[0], points[-2] if len(points) > 1 else points[0], points[-1]
    growth = last["peak_rss_gib"] / prev["peak_rss_gib"]
    rows = [row(f"predict_zarr_peak_rss_{last['size']}px", last["peak_rss_gib"], prev["peak_rss_gib"], unit="GiB",
                goal=f"<= 2 GiB and flat: the last doubling of the side ({prev['size']} -> {last['size']} px, "
                     "4x the pixels) adds <= 10%",
                met=last["peak_rss_gib"] <= 2 and growth <= 1.1,
                reference_is=f"peak RSS at {prev['size']}px, same run", device=device,
                per_size={p["size"]: round(p["peak_rss_gib"], 3) for p in points},
                growth_vs_smallest=round(last["peak_rss_gib"] / first["peak_rss_gib"], 3),
                seconds={p["size"]: round(p["seconds"], 1) for p in points},
                megapixels_per_s={p["size"]: round(p["megapixels_per_s"], 2) for p in points},
                rss_after_imports_gib=round(first["rss_after_imports_gib"], 3),
                note="memory rises until one block's buffers and one row of border tiles (64 MiB cap) are in use, "
                     "then stays flat; the image itself is never loaded")]
    return rows, points


if __name__ == "__main__":
    if sys.argv[1] == "child":
        print(json.dumps(child(*sys.argv[2:6])))
    else:
        rows, points = run(tuple(int(s) for s in sys.argv[1:]) or (4096, 8192, 16384))
        for p in points:
            print(p)
        for r in rows:
            print(r)
