"""The engine's constants, each written once (the declarations and the modules that use them import it).

Nothing here imports anything: every room of the engine may read it.
"""

from __future__ import annotations

PERCENTILES = (1.0, 99.8)
"""Normalisation percentiles (low, high): the CSBDeep/StarDist habit."""
VAL_FRACTION = 0.15
"""Share of the annotations held apart for validation."""
TIME_LIMIT = 120.0
"""Seconds of training when the user gives no budget."""
LEARNING_RATE = 2e-3
"""Learning rate of tasks that do not suggest their own."""
OPTIMIZERS = ("adam", "adamw", "sgd")
DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
MAX_CONTEXT = 10
"""Largest temporal context (frames on each side)."""

PATCH_2D = 128
"""Training patch side in 2D (tasks may suggest their own, e.g. :data:`IMAGE_PATCH_2D`)."""
PATCH_3D = (32, 96, 96)
"""3D patch on a GPU (CUDA, MPS)."""
PATCH_3D_CPU = (16, 64, 64)
"""3D patch on a CPU: a 32x96x96 batch of 8 takes ~15 s per step on one core, this with a batch of
:data:`BATCH_3D_CPU` ~1 s (``benchmarks/FINDINGS.md``, issue 16.2)."""
BATCH_3D_CPU = 4
IMAGE_PATCH_2D = 64
"""Patch side of the image tasks (denoise, restore, reconstruct): small patches, many steps."""
IMAGE_PATCH_3D = (16, 64, 64)

PREVIEW_EVERY = 5.0
"""Seconds between previews while training (0 turns them off)."""
LIVE_PREVIEW_EVERY = 2.0
"""Live training (the user annotating) previews at least this often: the user waits for the result of a stroke."""

OVERLAP = 0.25
"""Tile overlap as a fraction of the tile (prediction, validation, previews)."""
TILE = {2: 256, 3: (32, 128, 128)}
"""Prediction tile when the model prefers none."""
TILE_BATCH = 4
"""Tiles per forward pass when the caller gives none."""
BLOCK = {2: (2048, 2048), 3: (64, 256, 256)}
"""Blocks of block-by-block prediction (zarr output); memory grows with them."""

NARROW, WIDE = 16, 32


def network_width(device_type: str) -> int:
    """Channels of a network's first level on ``device_type``: wider where a GPU makes width cheap.

    On a CPU (and Apple's MPS, whose small GPUs train like one) more steps beat more width within minutes.
    """
    return WIDE if str(device_type).split(":")[0] == "cuda" else NARROW


def shown(value) -> str:
    """A default as a front end writes it: ``0.25``, ``256``, ``32x128x128``."""
    if isinstance(value, (tuple, list)):
        return "x".join(shown(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)
