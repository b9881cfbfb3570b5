"""Training step time: our ``train()`` generator vs a bare PyTorch loop, same model and batch, interleaved.

Ours includes everything a user gets per step: patch sampling from the real image,
augmentation, the learning-rate schedule, gradient clipping and the yielded event.
The reference is the minimal loop (pre-made batch, forward, loss, backward, step).
Steps alternate (ours, reference, ours, ...) so background load hits both alike;
the ratio is the median of the step-by-step ratios (ours / the neighbouring reference step).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch.nn import functional as F

from benchmarks.common import nuclei_2d, row
from napari_bioimg.core import TrainConfig, get_model, get_task
from napari_bioimg.core import events as E
from napari_bioimg.core.config import suggest
from napari_bioimg.core.training.loop import train


def run(device: str = "cpu", steps: int = 20, warmup: int = 3, batch: int = 8, patch: int = 128) -> list[dict]:
    img, lbl = nuclei_2d(512)
    cfg = TrainConfig(task="instance", epochs=1, steps_per_epoch=10_000, time_limit=None, batch_size=batch,
                      patch_size=patch, val_fraction=0, preview_every=0, device=device)
    gen = train(img, lbl, cfg, preview_index=None)
    dev = torch.device(device)
    torch.manual_seed(0)
    config = get_task("instance").default_model_config(2, dev.type)  # the product's default U-Net here
    ref_model = get_model("unet", spatial_dims=2, in_channels=1, out_channels=3, **config).to(dev).train()
    # the learning rate ours trains with: the task's default, which train() fills in when the config leaves it unset
    opt = torch.optim.Adam(ref_model.parameters(), lr=cfg.learning_rate or suggest("instance", device=device).learning_rate)
    x = torch.randn(batch, 1, patch, patch, device=dev)
    y = torch.randint(0, 3, (batch, patch, patch), device=dev)
    w = torch.tensor([1.0, 1.0, 3.0], device=dev)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else None

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def ref_step():
        opt.zero_grad(set_to_none=True)
        if amp is not None:
            with amp:
                logits = ref_model(x)
        else:
            logits = ref_model(x)
        F.cross_entropy(logits.float(), y, weight=w).backward()
        opt.step()
        sync()

    def our_step():
        while not isinstance(next(gen), E.StepDone):
            pass
        sync()

    ours, ref = [], []
    for i in range(warmup + steps):
        for fn, acc in ((our_step, ours), (ref_step, ref)) if i % 2 == 0 else ((ref_step, ref), (our_step, ours)):
            t = time.perf_counter()
            fn()
            if i >= warmup:
                acc.append(time.perf_counter() - t)
    gen.close()
    o, r = float(np.median(ours)), float(np.median(ref))
    # each step is compared with its neighbour of the other kind, so a burst of background load cancels out
    paired = float(np.median(np.asarray(ours) / np.asarray(ref)))
    out = row("train_step_time", o, r, unit="s/step", goal="ratio <= 1.05", met=paired <= 1.05, device=device,
              batch=batch, patch=patch, steps=steps, model=f"unet {config}", median_paired_ratio=round(paired, 4))
    out["ratio"] = round(paired, 4)  # the paired median is the robust ratio; ours/reference of medians is close
    out["ratio_of_medians"] = round(o / r, 4)
    return [out]


if __name__ == "__main__":
    import sys

    for r in run(sys.argv[1] if len(sys.argv) > 1 else "cpu"):
        print(r)
