"""Building a built-in: chunks of training on fresh simulated scenes, resumable, finished atomically.

The work folder holds ``state.json`` (chunks done, steps, seconds, each chunk's
validation scores) and ``latest.pt`` (the last chunk's model file). A build that is
stopped (or killed) loses at most the chunk it was in; run the same command again
and it continues from ``latest.pt``. When the budget is spent the model is scored on
simulated test scenes it never trained on, stripped of its training state and
written into the weights folder with its card (:func:`finish`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core.sim import VERSION, Scene, make_pool
from ..core.tasks import get_task
from .recipes import RECIPES, Recipe

#: A chunk shorter than this is not started (the rest of the budget is too small to train).
MIN_CHUNK = 20.0
#: Second seed word offset of the test scenes (never trained on).
TEST_STREAM = 1_000_000


def default_work(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "napari-bioimg" / "zoo-build" / name


def weights_path(name: str) -> Path:
    from ..core.formats.builtins import weights_dir

    return weights_dir() / f"{name}.pt"


def read_state(work: Path) -> dict[str, Any]:
    path = work / "state.json"
    if path.exists():
        return json.loads(path.read_text())
    return {"chunks": 0, "steps": 0, "train_seconds": 0.0, "wall_seconds": 0.0, "log": []}


def write_state(work: Path, state: dict[str, Any]) -> None:
    from ..core.data.io import atomic_path

    with atomic_path(work / "state.json") as tmp:
        Path(tmp).write_text(json.dumps(state, indent=1))


def pool_dataset(recipe: Recipe, scenes: list[Scene], prefix: str):
    """The engine's :class:`DataSet` of generated scenes (labels for segmentation, the clean image for denoising)."""
    from ..core.data.dataset import DataSet, make_sample

    axes = "ZYX" if len(recipe.scene_shape) == 3 else "YX"
    samples = []
    image_out = get_task(recipe.task).output_kind == "image"  # a denoiser keeps the clean scene as its reference
    for i, s in enumerate(scenes):
        if image_out:
            samples.append(make_sample(s.image, target=s.clean, axes=axes, name=f"{prefix}{i}"))
        else:
            samples.append(make_sample(s.image, s.labels, axes=axes, name=f"{prefix}{i}"))
    return DataSet(samples, spatial_dims=recipe.spatial_dims)


def build(name: str, *, time_limit: float, work: Path | None = None, out: Path | None = None, threads: int = 1,
          chunk_seconds: float | None = None, pool: int | None = None,
          log: Callable[[str], None] = print) -> Path | None:
    """Train (or continue training) built-in ``name`` until ``time_limit`` wall seconds in all; then finish it.

    Returns the written model file, or ``None`` when the budget ran out before any chunk trained.
    """
    import torch

    from ..core.config import TrainConfig
    from ..core.formats.checkpoint import load_checkpoint, save_checkpoint
    from ..core.training.loop import train_sync

    recipe = RECIPES[name]
    if pool:
        recipe = replace(recipe, pool=pool, test_scenes=min(recipe.test_scenes, pool))
    work = Path(work or default_work(name))
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    state = read_state(work)
    latest = work / "latest.pt"
    chunk_len = float(chunk_seconds or recipe.chunk_seconds)
    while True:
        left = time_limit - state["wall_seconds"]
        budget = min(chunk_len, left - 0.3 * min(chunk_len, left))  # generation, validation and calibration
        if budget < MIN_CHUNK:
            break
        t0 = time.perf_counter()
        k = state["chunks"]
        scenes = make_pool(recipe.pool, recipe.scene_shape, recipe.seed, recipe.settings, first=k * recipe.pool)
        ds = pool_dataset(recipe, scenes, f"c{k}-")
        config = TrainConfig(task=recipe.task, spatial_dims=recipe.spatial_dims, time_limit=budget, seed=k,
                             num_threads=threads, preview_every=0, val_fraction=0.1, **recipe.config)
        init = load_checkpoint(latest) if latest.exists() else None
        result = train_sync(ds, config=config, init_checkpoint=init, preview_index=None)
        save_checkpoint(result.checkpoint, latest)
        wall = time.perf_counter() - t0
        state["chunks"] = k + 1
        state["steps"] = result.steps  # step numbers continue from the chunk before
        state["train_seconds"] += result.seconds
        state["wall_seconds"] += wall
        entry = {"chunk": k, "steps": result.steps, "seconds": round(result.seconds, 1), "wall": round(wall, 1),
                 "metrics": {m: round(v, 4) for m, v in result.metrics.items()}}
        state["log"].append(entry)
        write_state(work, state)
        log(f"{name} chunk {k}: {result.steps} steps in {result.seconds:.0f} s ({wall:.0f} s wall); "
            f"total {state['steps']} steps, {state['wall_seconds']:.0f}/{time_limit:.0f} s; {entry['metrics']}")
    if not latest.exists():
        log(f"{name}: no chunk trained (budget {time_limit:.0f} s)")
        return None
    return finish(recipe, load_checkpoint(latest), state, out or weights_path(name), log)


def test_scores(recipe: Recipe, ckpt: dict) -> dict[str, float]:
    """The model's scores on simulated scenes it never trained on (F1@0.5 for instances, PSNR for denoising)."""
    from ..core.formats.loading import load_model
    from ..core.inference.predict import predict_sync
    from ..core.metrics import matching_stack, psnr

    loaded = load_model(ckpt, "cpu")
    scenes = make_pool(recipe.test_scenes, recipe.scene_shape, recipe.seed, recipe.settings, first=TEST_STREAM)
    axes = "ZYX" if len(recipe.scene_shape) == 3 else "YX"
    if get_task(recipe.task).output_kind == "image":
        values, raw = [], []
        for s in scenes:
            lo, hi = np.percentile(s.clean, [0.1, 99.9])
            out = predict_sync(loaded, s.image, axes)
            values.append(psnr(out, s.clean, hi - lo))
            raw.append(psnr(s.image, s.clean, hi - lo))
        return {"sim_psnr": float(np.mean(values)), "sim_psnr_input": float(np.mean(raw))}
    preds = [predict_sync(loaded, s.image, axes) for s in scenes]
    pooled = matching_stack([s.labels for s in scenes], preds)
    return {"sim_f1@0.5": float(pooled["thresholds"]["0.5"]["f1"])}


def finish(recipe: Recipe, ckpt: dict, state: dict, out: Path, log: Callable[[str], None]) -> Path:
    """Score, strip the training state and write the built-in (atomically) with its card."""
    from ..core.formats.checkpoint import save_checkpoint

    for key in ("resume", "last_state_dict"):
        ckpt.pop(key, None)
    ckpt["history"] = ckpt.get("history", [])[-50:]
    scores = test_scores(recipe, ckpt)
    diameters = recipe.settings.diameter
    ckpt["builtin"] = {
        "name": recipe.name,
        "generator": {"version": VERSION, "settings": recipe.settings.to_dict(), "scene_shape": list(recipe.scene_shape),
                      "pool": recipe.pool, "seed": recipe.seed},
        "object_diameter": {"range": list(diameters), "typical": float(np.sqrt(diameters[0] * diameters[1]))},
        "steps": int(ckpt["training"].get("steps", 0)), "train_seconds": round(state["train_seconds"], 1),
        "wall_seconds": round(state["wall_seconds"], 1), "chunks": state["chunks"], "scores": scores,
        "real_images": 0,
        "rebuild": f"python -m napari_bioimg.zoo build {recipe.name}",
    }
    ckpt["training"]["seconds"] = state["train_seconds"]
    save_checkpoint(ckpt, out)
    log(f"{recipe.name}: wrote {out} ({out.stat().st_size / 1e6:.1f} MB); {scores}")
    return out
