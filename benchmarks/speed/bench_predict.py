"""Tiled prediction: ours vs MONAI ``sliding_window_inference``, same model, tiles, overlap and blending.

Both get the same normalised real image (tiled nuclei), the same U-Net weights,
256x256 tiles, 25% overlap, 4 tiles per batch and Gaussian blending (sigma =
0.125 x tile), and return blended softmax probabilities. Runs alternate (ours,
MONAI, ours, ...); the best of each is compared. The headline gives MONAI our
prepared (folded, channels-last) model too, so that it compares the tilers on the
same network; the gain of preparing the model (MONAI with the plain vs the prepared
network) is its own row.
Achieved GFLOP/s (convolution FLOPs counted by torch's FlopCounterMode) is
compared with a large fp32 matmul measured in the same run.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks.common import best_of, matmul_peak_gflops, nuclei_2d, row
from napari_bioimg.core import get_model, get_task
from napari_bioimg.core.control import drain
from napari_bioimg.core.data.normalize import Normalizer
from napari_bioimg.core.formats.checkpoint import build_checkpoint
from napari_bioimg.core.formats.loading import load_model
from napari_bioimg.core.inference.runner import model_fn
from napari_bioimg.core.inference.tiling import TileGrid, tiled_apply


def _loaded(model, config: dict, device: str):
    ckpt = build_checkpoint(model_name="unet", model_config=config, state_dict=model.state_dict(), task="instance",
                            task_meta={}, normalizer=Normalizer(), axes="YX", spatial_dims=2, in_channels=1,
                            out_channels=3)
    return load_model(ckpt, device)


def conv_flops(model, shape, device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(shape, device=device))
    return float(counter.get_total_flops())


def lone_conv_gflops(dev, channels: int = 16, size: int = 256, batch: int = 4) -> float:
    """One 3x3 convolution, channels-last, as in the U-Net's first level: its GFLOP/s here."""
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(dev).eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, channels, size, size, device=dev).contiguous(memory_format=torch.channels_last)
    flops = 2 * 9 * channels * channels * size * size * batch

    def run():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            for _ in range(5):
                conv(x)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    run()
    return 5 * flops / best_of(run, 3) / 1e9


def run(device: str = "cpu", size: int = 768, tile: int = 256, batch: int = 4, rounds: int = 3) -> list[dict]:
    from monai.inferers import sliding_window_inference

    dev = torch.device(device)
    img, _ = nuclei_2d(size)
    x = Normalizer().fit(img[None, None]).apply(img[None, None])[0]  # (1, H, W) float32
    torch.manual_seed(0)
    config = get_task("instance").default_model_config(2, dev.type)  # the product's default U-Net here
    model = get_model("unet", spatial_dims=2, in_channels=1, out_channels=3, **config).to(dev).eval()
    loaded = _loaded(model, config, device)
    ours_fn = model_fn(loaded, amp=True)  # the product path: folded batch-norm, channels-last, autocast on CUDA
    x_t = torch.from_numpy(x[None]).to(dev)
    amp = dev.type == "cuda"

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def ours():
        out = drain(tiled_apply(ours_fn, x, 3, tile, 0.25, loaded.size_divisor, batch, dev))
        sync()
        return out

    def monai(net):
        def predictor(b):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                return torch.softmax(net(b).float(), 1)

        with torch.inference_mode():
            out = sliding_window_inference(x_t, (tile, tile), batch, predictor, overlap=0.25, mode="gaussian",
                                           sigma_scale=0.125)
        sync()
        return out[0].float().cpu().numpy()

    fast_model = loaded.fast[(True, False, str(dev))][0]

    def monai_fast():
        def net(b):
            return fast_model(b.contiguous(memory_format=torch.channels_last))
        return monai(net)

    compiled_fn = model_fn(loaded, amp=True, compile=True)  # the `predict --compile` path

    def ours_compiled():
        out = drain(tiled_apply(compiled_fn, x, 3, tile, 0.25, loaded.size_divisor, batch, dev))
        sync()
        return out

    t = time.perf_counter()
    ours_compiled()  # compiles
    compile_seconds = time.perf_counter() - t
    ours(), monai(model)  # warm-up (allocations, oneDNN/cuDNN kernel choice)
    t_ours, t_ref, t_ref_fast, t_comp = [], [], [], []
    for i in range(rounds):
        order = [(ours, t_ours), (lambda: monai(model), t_ref), (monai_fast, t_ref_fast), (ours_compiled, t_comp)]
        for fn, acc in (order if i % 2 == 0 else order[::-1]):
            t = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t)
    a, b = ours(), monai(model)
    diff = float(np.abs(a - b).max())
    n_tiles = len(TileGrid((size, size), tile, 0.25, loaded.size_divisor).positions())
    flops = conv_flops(model, (1, 1, tile, tile), dev) * n_tiles
    # fp32 peak on the CPU; on CUDA the convolutions run in bf16 (AMP), so the bf16 matmul peak is the yardstick
    peak_dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    peak = max(matmul_peak_gflops(device, dtype=peak_dtype) for _ in range(2))
    best, ref, ref_fast = min(t_ours), min(t_ref), min(t_ref_fast)
    conv = lone_conv_gflops(dev, channels=16)
    common = {"device": device, "model": f"unet {config}", "image": f"{size}x{size}", "tile": tile, "overlap": 0.25, "batch": batch,
              "tiles": n_tiles, "max_abs_diff_vs_monai": round(diff, 5)}
    gflops = flops / best / 1e9
    return [
        # the headline compares the same model: MONAI's tiler given our prepared (folded, channels-last) network
        row("predict_vs_monai", best, ref_fast, unit="s/image", goal="ratio <= 0.9", met=best / ref_fast <= 0.9,
            monai_model="ours, prepared (folded batch-norm, channels-last)", **common),
        row("prepared_model_gain_in_monai", ref_fast, ref, unit="s/image",
            goal="(information: what folding batch-norm + channels-last gains, MONAI's tiler both times)", met=None,
            **common),
        row("predict_gflops_vs_matmul_peak", gflops, peak, unit="GFLOP/s", goal="ratio >= 0.5",
            met=gflops / peak >= 0.5, conv_gflop_per_image=round(flops / 1e9, 2),
            peak_dtype=str(peak_dtype).replace("torch.", ""), **common),
        row("predict_gflops_vs_matmul_peak_compiled", flops / min(t_comp) / 1e9, peak, unit="GFLOP/s",
            goal="(information: the same with `predict --compile`)", met=None,
            compile_seconds=round(compile_seconds, 1), speedup_vs_eager=round(best / min(t_comp), 3), **common),
        row("lone_conv3x3_16ch_gflops_vs_matmul_peak", conv, peak, unit="GFLOP/s",
            goal="(information: the ceiling a 16-channel 3x3 convolution reaches here)", met=None,
            device=device),
    ]


if __name__ == "__main__":
    import sys

    for r in run(sys.argv[1] if len(sys.argv) > 1 else "cpu"):
        print(r)
