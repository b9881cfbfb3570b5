"""CAREamics Noise2Void on one noisy image for a wall-clock budget (for quality/denoise_quality.py).

Run with a Python that has CAREamics, in its own virtual environment:

    /tmp/care/bin/python -m benchmarks.references.careamics_n2v --image noisy.tif --axes YX --out pred.tif --time-limit 120

Prints one JSON line (steps, seconds) and writes the prediction as float32.

CAREamics 0.3.5 imports ``torchvision`` at start-up but uses it only for its LVAE
models and a version string, not for N2V. With the CPU build of torch 2.13 there
is no torchvision that loads (PyPI's builds link the CUDA torch libraries), so an
empty stand-in module is registered before CAREamics is imported; torchmetrics and
lightning are imported first, so they see no torchvision and skip its features.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import sys
import time
import types


def _stand_in_torchvision() -> None:
    import lightning.pytorch  # noqa: F401  (decide "no torchvision" before the stand-in exists)
    import torchmetrics  # noqa: F401

    try:
        import torchvision  # noqa: F401
        return
    except Exception:
        pass
    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
    mods = [types.ModuleType(n) for n in names]
    for m in mods:
        m.__spec__ = importlib.machinery.ModuleSpec(m.__name__, None)
    mods[0].__version__ = "unavailable"
    mods[0].transforms, mods[1].functional = mods[1], mods[2]
    sys.modules.update(dict(zip(names, mods)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", required=True)
    ap.add_argument("--axes", required=True, help="YX or TYX (T becomes CAREamics' S)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--time-limit", type=float, default=120)
    ap.add_argument("--workdir", default="careamics_work")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--n2v2", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    _stand_in_torchvision()
    import numpy as np
    import tifffile
    import torch
    from careamics import CAREamist
    from careamics.config import create_advanced_n2v_config

    torch.set_num_threads(args.threads)
    image = tifffile.imread(args.image).astype(np.float32)
    axes = args.axes.replace("T", "S")
    seconds = int(round(args.time_limit))
    n_patches = int(np.prod([s // 64 for s in image.shape[-2:]])) * (image.shape[0] if image.ndim == 3 else 1)
    n_val = max(1, min(8, n_patches // 8))  # CAREamics' default is 8; small images cannot spare that many
    config = create_advanced_n2v_config(
        experiment_name="bench", data_type="array", axes=axes, patch_size=[64, 64], batch_size=args.batch_size,
        num_epochs=10_000, n_val_patches=n_val, use_n2v2=args.n2v2, num_workers=0, seed=1,
        trainer_params={"max_time": {"seconds": seconds}, "enable_model_summary": False},
    )
    careamist = CAREamist(config, work_dir=args.workdir, enable_progress_bar=False)
    t0 = time.perf_counter()
    careamist.train(train_data=image)
    train_s = time.perf_counter() - t0
    steps = int(careamist.trainer.global_step)
    t0 = time.perf_counter()
    preds, _ = careamist.predict(image, axes=axes, data_type="array", tile_size=(256, 256), tile_overlap=(48, 48))
    pred = np.asarray(preds[0] if len(preds) == 1 else np.stack(preds), dtype=np.float32).reshape(image.shape)
    predict_s = time.perf_counter() - t0
    tifffile.imwrite(args.out, pred)
    print(json.dumps({"steps": steps, "train_s": round(train_s, 1), "predict_s": round(predict_s, 1),
                      "batch": args.batch_size, "val_patches": n_val, "n2v2": args.n2v2}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
