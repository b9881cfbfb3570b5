"""Small building blocks shared by the model families, for 2D and 3D."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError

NORMS = ("batch", "group", "instance", "none")


def conv(spatial_dims: int, *args, **kwargs) -> nn.Module:
    return (nn.Conv2d if spatial_dims == 2 else nn.Conv3d)(*args, **kwargs)


def norm(kind: str, spatial_dims: int, channels: int) -> nn.Module:
    if kind == "batch":
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "instance":
        return (nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


class ConvBlock(nn.Sequential):
    """Two (conv 3x3 -> norm -> ReLU) layers."""

    def __init__(self, spatial_dims: int, cin: int, cout: int, norm_kind: str = "batch", dropout: float = 0.0):
        layers: list[nn.Module] = []
        for i in range(2):
            layers += [
                conv(spatial_dims, cin if i == 0 else cout, cout, 3, padding=1, bias=norm_kind == "none"),
                norm(norm_kind, spatial_dims, cout),
                nn.ReLU(inplace=True),
            ]
            if dropout and i == 0:
                layers.append((nn.Dropout2d if spatial_dims == 2 else nn.Dropout3d)(dropout))
        super().__init__(*layers)


class BlurPool(nn.Module):
    """Anti-aliased downsampling (blur with a [1,2,1] kernel, then stride 2).

    Max-pooling aliases; N2V2 showed that this removes the checkerboard artefacts
    of blind-spot denoisers.
    """

    def __init__(self, spatial_dims: int, channels: int, pool_z: bool = True):
        super().__init__()
        k1 = torch.tensor([1.0, 2.0, 1.0])
        kz = k1 if pool_z else torch.ones(1)
        k = k1[:, None] * k1[None, :] if spatial_dims == 2 else kz[:, None, None] * k1[None, :, None] * k1[None, None, :]
        k = (k / k.sum()).expand(channels, 1, *k.shape).contiguous()
        self.register_buffer("kernel", k)
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.stride = 2 if spatial_dims == 2 or pool_z else (1, 2, 2)
        self.pad = [1, 1] * spatial_dims if spatial_dims == 2 or pool_z else [1, 1, 1, 1, 0, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.pad, mode="replicate")
        f = F.conv2d if self.spatial_dims == 2 else F.conv3d
        return f(x, self.kernel, stride=self.stride, groups=self.channels)


def pad_to_multiple(x: torch.Tensor, multiple: int | tuple[int, ...]) -> tuple[torch.Tensor, list[slice]]:
    """Pad the spatial dims of ``x`` (N, C, *S) up to a multiple (one int, or one per dim); return the crop back."""
    spatial = x.shape[2:]
    mult = (multiple,) * len(spatial) if isinstance(multiple, int) else tuple(multiple)
    target = [((s + m - 1) // m) * m for s, m in zip(spatial, mult)]
    if list(spatial) == target:
        return x, [slice(None)] * len(spatial)
    pad: list[int] = []
    for s, t in zip(reversed(spatial), reversed(target)):
        pad += [0, t - s]
    mode = "reflect" if all(t - s < s for s, t in zip(spatial, target)) else "replicate"
    return F.pad(x, pad, mode=mode), [slice(0, s) for s in spatial]
