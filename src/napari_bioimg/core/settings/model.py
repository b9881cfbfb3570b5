""":class:`ModelOptions`: the architecture options front ends offer, declared once (bounds, choices, help).

A model family's own defaults are its builder's (e.g. :class:`~..models.unet.UNet`), and
the task's :meth:`~..tasks.base.Task.default_model_config` chooses some of them; these
declarations bound what a user may ask for (``TrainConfig.model_config``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .declare import check, declared, setting

NORMS = ("batch", "group", "instance", "none")


@dataclass
class ModelOptions:
    """The model options a user may set (``None``: the task's or the model family's)."""

    depth: int | None = setting(None, "U-Net depth, or number of classifier stages", low=1, high=6, whole=True,
                                hint="resolution levels, e.g. 3", unset="the task's")
    base_channels: int | None = setting(None, "width of the network's first level (doubles at every level)", low=4,
                                        high=512, whole=True, hint="e.g. 16 on a CPU, 32 on a GPU",
                                        unset="the task's, by device")
    norm: str | None = setting(None, "normalisation layers", choices=NORMS, unset="the model's")
    latent_channels: int | None = setting(None, "autoencoder: features per position of the bottleneck", low=1,
                                          high=1024, whole=True, hint="e.g. 64", unset="the task's")
    pool_z_levels: int | None = setting(None, "3D U-Net: levels that also halve Z", low=0, high=6, whole=True,
                                        hint="at most the depth", unset="from the patch's Z size")


def check_model_config(model_config: dict[str, Any]) -> None:
    """Raise :class:`~..errors.ConfigError` (``field`` = the option) for a declared option outside its bounds."""
    names = declared(ModelOptions)
    check(ModelOptions(**{k: v for k, v in model_config.items() if k in names}))
