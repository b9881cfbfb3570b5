"""Convolutional autoencoder for 2D and 3D images.

Shape contract: input ``(N, in_channels, *spatial)`` with any spatial size (padded
internally to a multiple of ``2**depth`` and cropped back); :meth:`forward` returns
``(N, out_channels, *spatial)``; :meth:`encode` returns the latent feature map
``(N, latent_channels, *spatial / 2**depth)`` or, pooled, one vector per input
``(N, latent_channels)`` (e.g. an embedding of an object's crop).

Unlike the U-Net there are no skip connections: everything the decoder knows
passes through the bottleneck, so the latent size decides how much is kept.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import BlurPool, ConvBlock, conv, norm, pad_to_multiple
from .registry import halves_depth_times, register_model


@register_model("autoencoder", kind="dense", description="Convolutional autoencoder (2D/3D) with a latent bottleneck",
                protocol=halves_depth_times)
class AutoEncoder(nn.Module):
    """Encoder (conv blocks + down-sampling) -> latent -> decoder (up-sampling + conv blocks).

    Parameters
    ----------
    spatial_dims
        2 or 3.
    in_channels, out_channels
        Image channels in and out.
    depth
        Number of down-sampling steps (each halves every spatial axis).
    base_channels
        Features at full resolution, doubled at each level.
    latent_channels
        Features per position of the bottleneck (the latent size).
    norm
        ``"batch"``, ``"group"``, ``"instance"`` or ``"none"``.
    pool
        ``"max"`` or ``"blur"`` (anti-aliased) down-sampling.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 3,
        base_channels: int = 32,
        latent_channels: int = 16,
        norm: str = "batch",
        pool: str = "max",
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if not 1 <= depth <= 6:
            raise ValueError(f"depth must be between 1 and 6, got {depth}")
        if not 1 <= latent_channels <= 4096:
            raise ValueError(f"latent_channels must be between 1 and 4096, got {latent_channels}")
        if pool not in ("max", "blur"):
            raise ValueError(f"pool must be 'max' or 'blur', got {pool!r}")
        self.spatial_dims, self.depth, self.latent_channels = spatial_dims, depth, latent_channels
        widths = [base_channels * 2**i for i in range(depth + 1)]
        maxpool = nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d
        deconv = nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d
        enc: list[nn.Module] = [ConvBlock(spatial_dims, in_channels, widths[0], norm)]
        for i in range(depth):
            enc.append(BlurPool(spatial_dims, widths[i]) if pool == "blur" else maxpool(2))
            enc.append(ConvBlock(spatial_dims, widths[i], widths[i + 1], norm))
        enc.append(conv(spatial_dims, widths[-1], latent_channels, 1))
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [conv(spatial_dims, latent_channels, widths[-1], 1),
                                _norm_act(norm, spatial_dims, widths[-1])]
        for i in reversed(range(depth)):
            dec.append(deconv(widths[i + 1], widths[i], kernel_size=2, stride=2))
            dec.append(ConvBlock(spatial_dims, widths[i], widths[i], norm))
        dec.append(conv(spatial_dims, widths[0], out_channels, 1))
        self.decoder = nn.Sequential(*dec)

    @property
    def size_divisor(self) -> int:
        return halves_depth_times(self.depth).size_divisor

    def encode(self, x: torch.Tensor, pooled: bool = False) -> torch.Tensor:
        """Latent features of ``x``: a map ``(N, latent, *spatial / 2**depth)``, or ``(N, latent)`` if ``pooled``.

        The input is padded (reflect) to a multiple of ``2**depth`` first, as in
        :meth:`forward`.
        """
        x, _ = pad_to_multiple(x, self.size_divisor)
        z = self.encoder(x)
        return z.flatten(2).mean(dim=2) if pooled else z

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent map -> image ``(N, out_channels, *latent_spatial * 2**depth)``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, crop = pad_to_multiple(x, self.size_divisor)
        y = self.decode(self.encoder(x))
        return y[(slice(None), slice(None), *crop)]


def _norm_act(kind: str, spatial_dims: int, channels: int) -> nn.Module:
    return nn.Sequential(norm(kind, spatial_dims, channels), nn.ReLU(inplace=True))
