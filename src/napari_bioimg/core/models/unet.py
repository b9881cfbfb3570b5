"""U-Net for 2D and 3D images.

Shape contract: input ``(N, in_channels, *spatial)`` with any spatial size (padded
internally to a multiple of ``2**depth`` and cropped back); output
``(N, out_channels, *spatial)`` logits.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import BlurPool, ConvBlock, conv, pad_to_multiple
from .registry import ModelProtocol, register_model


def _factor(spatial_dims: int, pool_z: bool) -> int | tuple[int, int, int]:
    """Down/up-sampling factor: 2 along every dim, or only along Y and X (anisotropic 3D levels)."""
    return 2 if spatial_dims == 2 or pool_z else (1, 2, 2)


class Down(nn.Module):
    def __init__(self, spatial_dims: int, cin: int, cout: int, norm_kind: str, pool: str, dropout: float,
                 pool_z: bool = True):
        super().__init__()
        if pool == "blur":
            self.pool: nn.Module = BlurPool(spatial_dims, cin, pool_z)
        else:
            self.pool = (nn.MaxPool2d if spatial_dims == 2 else nn.MaxPool3d)(_factor(spatial_dims, pool_z))
        self.block = ConvBlock(spatial_dims, cin, cout, norm_kind, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.pool(x))


class Up(nn.Module):
    def __init__(self, spatial_dims: int, cin: int, cskip: int, cout: int, norm_kind: str, pool_z: bool = True,
                 upsample: str = "deconv"):
        super().__init__()
        factor = _factor(spatial_dims, pool_z)
        if upsample == "resize":  # interpolate, then mix channels: no checkerboard (each output pixel sees alike)
            mode = "bilinear" if spatial_dims == 2 else "trilinear"
            self.up: nn.Module = nn.Sequential(nn.Upsample(scale_factor=factor, mode=mode, align_corners=False),
                                               conv(spatial_dims, cin, cout, 1))
        else:  # a transposed convolution: learns the upsampling, can leave a faint grid of period 2**level
            deconv = nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d
            self.up = deconv(cin, cout, kernel_size=factor, stride=factor)
        self.block = ConvBlock(spatial_dims, cout + cskip, cout, norm_kind)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = self.up(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.block(x)


def unet_divisor(spatial_dims: int, depth: int, pool_z_levels: int | None) -> int | tuple[int, int, int]:
    """Sizes a U-Net takes: ``2**depth`` along every dim, or ``(2**pool_z_levels, 2**depth, 2**depth)``
    when Z is pooled fewer times (anisotropic 3D)."""
    z_levels = depth if pool_z_levels is None or spatial_dims == 2 else int(pool_z_levels)
    return 2**depth if z_levels == depth else (2**z_levels, 2**depth, 2**depth)


def unet_protocol(spatial_dims: int, depth: int, pool_z_levels: int | None, **config) -> ModelProtocol:
    """The registry's :class:`~.registry.ModelProtocol` of a U-Net built with these options."""
    return ModelProtocol(unet_divisor(spatial_dims, depth, pool_z_levels))


@register_model("unet", kind="dense", description="U-Net (2D/3D) for segmentation and denoising", protocol=unet_protocol)
class UNet(nn.Module):
    """U-Net with configurable depth, width and normalisation.

    Parameters
    ----------
    spatial_dims
        2 or 3.
    in_channels, out_channels
        Input channels and output channels (classes, or image channels).
    depth
        Number of down-sampling steps; inputs are padded to a multiple of ``2**depth``.
    base_channels
        Features at the first level, doubled at each level.
    norm
        ``"batch"``, ``"group"``, ``"instance"`` or ``"none"``.
    pool
        ``"max"`` or ``"blur"`` (anti-aliased, used by N2V2 denoising).
    top_skip
        Keep the skip connection at full resolution (N2V2 removes it).
    upsample
        ``"deconv"`` (a learnt transposed convolution) or ``"resize"`` (bilinear interpolation and a 1x1
        convolution: no checkerboard, which an image-to-image output would show as a faint grid).
    residual
        Add the input to the output (for image-to-image tasks with
        ``in_channels == out_channels``).
    pool_z_levels
        3D only: how many of the ``depth`` levels also halve Z; the others
        halve only Y and X. For anisotropic data (Z spacing coarser than XY)
        or flat patches such as 8x128x128. ``None`` = all levels (isotropic).
        The first (finest) levels are the XY-only ones, so Z is pooled once XY
        has caught up with its coarser spacing.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 3,
        base_channels: int = 32,
        norm: str = "batch",
        pool: str = "max",
        top_skip: bool = True,
        upsample: str = "deconv",
        residual: bool = False,
        dropout: float = 0.0,
        pool_z_levels: int | None = None,
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if not 1 <= depth <= 6:
            raise ValueError(f"depth must be between 1 and 6, got {depth}")
        if residual and in_channels != out_channels:
            raise ValueError("residual=True needs in_channels == out_channels")
        if upsample not in ("deconv", "resize"):
            raise ValueError(f"upsample must be 'deconv' or 'resize', got {upsample!r}")
        if pool_z_levels is not None and not 0 <= pool_z_levels <= depth:
            raise ValueError(f"pool_z_levels must be between 0 and depth ({depth}), got {pool_z_levels}")
        self.spatial_dims, self.depth, self.residual = spatial_dims, depth, residual
        self.top_skip = top_skip
        self.pool_z_levels = depth if pool_z_levels is None or spatial_dims == 2 else int(pool_z_levels)
        pool_z = [i >= depth - self.pool_z_levels for i in range(depth)]
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.stem = ConvBlock(spatial_dims, in_channels, widths[0], norm)
        self.downs = nn.ModuleList(
            Down(spatial_dims, widths[i], widths[i + 1], norm, pool, dropout if i == depth - 1 else 0.0, pool_z[i])
            for i in range(depth)
        )
        self.ups = nn.ModuleList(
            Up(spatial_dims, widths[i + 1], widths[i] if (i > 0 or top_skip) else 0, widths[i], norm, pool_z[i],
               upsample)
            for i in reversed(range(depth))
        )
        self.head = conv(spatial_dims, widths[0], out_channels, 1)

    @property
    def size_divisor(self) -> int | tuple[int, int, int]:
        """Spatial sizes the network needs: one int, or ``(z, y, x)`` when Z is pooled fewer times."""
        return unet_divisor(self.spatial_dims, self.depth, self.pool_z_levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inp = x
        x, crop = pad_to_multiple(x, self.size_divisor)
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for level, up in zip(reversed(range(self.depth)), self.ups):
            skip = skips.pop()
            y = up(y, skip if (level > 0 or self.top_skip) else None)
        y = self.head(y)[(slice(None), slice(None), *crop)]
        return y + inp if self.residual else y
