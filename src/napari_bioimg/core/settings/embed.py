""":class:`EmbedConfig`: how object embeddings are computed, declared once (type, default, bounds, help)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .declare import check, setting

REDUCTIONS = ("auto", "pca", "umap")
"""2D maps: ``"pca"``, ``"umap"`` (needs ``umap-learn``), ``"auto"`` (UMAP when installed, else PCA)."""
DAY = 24 * 3600


@dataclass
class EmbedConfig:
    """How object embeddings are computed (validated by :meth:`validate`).

    The autoencoder trains for ``time_limit`` seconds or ``steps`` batches,
    whichever ends first.
    """

    time_limit: float | None = setting(20.0, "autoencoder training seconds", low=0, high=DAY, low_open=True,
                                       hint="seconds, at most one day (e.g. 20)")
    steps: int | None = setting(None, "autoencoder training steps (instead of, or with, a time limit)", low=1,
                                high=1_000_000, whole=True, hint="e.g. 200")
    batch_size: int = setting(64, "crops per training step", low=2, high=4096, whole=True, hint="e.g. 64")
    depth: int = setting(2, "autoencoder levels", low=1, high=4, whole=True, hint="e.g. 2")
    base_channels: int = setting(8, "width of the autoencoder's first level", low=2, high=256, whole=True,
                                 hint="e.g. 8")
    latent_channels: int = setting(32, "autoencoder bottleneck features", low=1, high=512, whole=True,
                                   hint="e.g. 32")
    learning_rate: float = setting(3e-3, "autoencoder learning rate", low=0, high=1, low_open=True,
                                   hint="try 1e-3")
    crop_size: tuple[int, ...] | int | None = setting(
        None, "crop size in pixels (one value, or one per spatial dim)", low=4, high=1024, whole=True,
        per_axis=True, hint="e.g. 32", unset="fitted to the objects, at most 32 per side")
    max_train_objects: int = setting(4000, "objects the autoencoder trains on", low=16, high=1_000_000, whole=True)
    n_features: int = setting(32, "embedding size: the first principal components of the pooled network features",
                              low=2, high=1024, whole=True)
    reduction: str = setting("pca", "2D map: pca (fast), umap (needs umap-learn; its first run compiles for a "
                             "minute or more), auto = UMAP when installed, else PCA", choices=REDUCTIONS)
    seed: int | None = setting(0, "random seed", low=0, high=2**32 - 1, whole=True, unset="a new one each run")
    device: str = setting("auto", "auto, cuda, mps or cpu")
    spatial_dims: int | None = setting(None, "2 = objects per slice/frame, 3 = volumetric crops", choices=(2, 3),
                                       unset="3 when the image has a Z axis")

    def validate(self) -> EmbedConfig:
        """Check every value; raise :class:`ConfigError` naming the field and how to fix it."""
        if self.time_limit is None and self.steps is None:
            raise ConfigError("give the autoencoder a time limit (seconds) or a number of steps")
        check(self)
        return self
