""":class:`PredictConfig`: the options of a prediction, declared once (type, default, bounds, help).

:func:`~..inference.predict.predict` takes one :class:`PredictConfig` and hands it to the
runner it picks (in memory, blocks, distributed, items); a field left ``None`` means what
:attr:`~.declare.Setting.unset` says (the engine decides). :meth:`PredictConfig.validate`,
called once by ``predict``, is the one check of every prediction option.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .declare import check, setting
from .defaults import BLOCK, OVERLAP, TILE, TILE_BATCH, shown


@dataclass
class PredictConfig:
    """How an image is predicted (none of it changes the model; all of it may change speed and memory)."""

    tile: int | tuple[int, ...] | None = setting(
        None, "tile size (one value, or one per spatial dim)", low=8, high=8192, whole=True, per_axis=True,
        hint="e.g. 256, or 32 128 128 in 3D",
        unset=f"the model's, else {shown(TILE[2])} in 2D, {shown(TILE[3])} in 3D")
    overlap: float = setting(OVERLAP, "tile overlap as a fraction of the tile", low=0, high=1, high_open=True,
                             hint="a fraction in [0, 1), e.g. 0.25; 0 for none")
    batch_size: int | None = setting(None, "tiles per forward pass (for classification, objects)", low=1, high=4096,
                                     whole=True, hint="e.g. 4 tiles; lower it when memory runs out",
                                     unset=f"{TILE_BATCH} tiles; for classification the task's")
    block: int | tuple[int, ...] | None = setting(
        None, "block size of block-by-block prediction (zarr output); memory grows with it", low=16, high=65536,
        whole=True, per_axis=True, hint="e.g. 2048, or 64 256 256 in 3D",
        unset=f"{shown(BLOCK[2][0])} in 2D, {shown(BLOCK[3])} in 3D")
    label_margin: int | None = setting(None, "instances: context in pixels around each block", low=0, high=65536,
                                       whole=True, hint="pixels, e.g. 64", unset="about two object diameters")
    amp: bool = setting(True, "mixed precision on a GPU")
    compile: bool = setting(False, "torch.compile the model (slower start, faster tiles)")
    tta: bool = setting(False, "average over flips (test-time augmentation, 4x slower)")
    workers: int | None = setting(None, "local dask workers for a folder", low=1, high=1024, whole=True,
                                  hint="e.g. 2", unset="one per 4 cores")

    def validate(self) -> PredictConfig:
        """Check every value; raise :class:`~..errors.ConfigError` naming the option and how to fix it."""
        check(self)
        return self

    @classmethod
    def of(cls, **given: Any) -> PredictConfig:
        """The configuration of the keywords given, ``None`` meaning the declared default; validated."""
        defaults = {f.name: getattr(cls, f.name) for f in fields(cls)}
        return cls(**{k: defaults[k] if v is None else v for k, v in given.items()}).validate()
