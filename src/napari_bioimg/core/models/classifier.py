"""CNN classifiers for 2D and 3D crops: one class score vector per input.

Shape contract: input ``(N, in_channels, *spatial)`` with any spatial size (each
stage halves the dims that are still at least 2 pixels; global pooling ends the
network); output ``(N, out_channels)`` logits, ``out_channels`` = number of classes.

``cnn`` stacks plain conv–norm–ReLU stages; ``resnet`` uses ResNet basic blocks
(two convs with an identity or 1x1 shortcut) in the same layout.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .layers import ConvBlock, conv, norm
from .registry import register_model


class BasicBlock(nn.Module):
    """ResNet basic block: conv–norm–ReLU–conv–norm plus a shortcut, then ReLU."""

    def __init__(self, spatial_dims: int, cin: int, cout: int, norm_kind: str):
        super().__init__()
        bias = norm_kind == "none"
        self.conv1 = conv(spatial_dims, cin, cout, 3, padding=1, bias=bias)
        self.norm1 = norm(norm_kind, spatial_dims, cout)
        self.conv2 = conv(spatial_dims, cout, cout, 3, padding=1, bias=bias)
        self.norm2 = norm(norm_kind, spatial_dims, cout)
        self.shortcut: nn.Module = nn.Identity()
        if cin != cout:
            self.shortcut = nn.Sequential(conv(spatial_dims, cin, cout, 1, bias=bias), norm(norm_kind, spatial_dims, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)), inplace=True)
        y = self.norm2(self.conv2(y))
        return F.relu(y + self.shortcut(x), inplace=True)


def halve(x: torch.Tensor) -> torch.Tensor:
    """Max-pool by 2 along every spatial dim that is at least 2 pixels (thin crops survive)."""
    kernel = tuple(2 if s >= 2 else 1 for s in x.shape[2:])
    if all(k == 1 for k in kernel):
        return x
    return (F.max_pool2d if x.ndim == 4 else F.max_pool3d)(x, kernel)


@register_model("cnn", kind="classifier", description="CNN classifier (2D/3D): conv blocks, global pooling, linear head")
class CNNClassifier(nn.Module):
    """Conv stages with pooling, global average+max pooling and a linear head.

    Parameters
    ----------
    spatial_dims
        2 or 3.
    in_channels
        Input channels (image channels, plus the object mask for object crops).
    out_channels
        Number of classes.
    depth
        Number of stages; stages after the first start with a 2x max-pool.
    base_channels
        Features of the first stage, doubled at each stage (capped at 16x).
    norm
        ``"batch"``, ``"group"``, ``"instance"`` or ``"none"``.
    dropout
        Dropout before the linear head.
    block
        ``"plain"`` (two conv–norm–ReLU) or ``"basic"`` (ResNet basic block).
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 2, depth: int = 4,
                 base_channels: int = 16, norm: str = "batch", dropout: float = 0.2, block: str = "plain"):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if not 1 <= depth <= 6:
            raise ValueError(f"depth must be between 1 and 6, got {depth}")
        if block not in ("plain", "basic"):
            raise ValueError(f"block must be 'plain' or 'basic', got {block!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.spatial_dims = spatial_dims
        widths = [base_channels * 2 ** min(i, 4) for i in range(depth)]
        stages = []
        cin = in_channels
        for w in widths:
            stages.append(ConvBlock(spatial_dims, cin, w, norm) if block == "plain" else BasicBlock(spatial_dims, cin, w, norm))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * widths[-1], out_channels)

    @property
    def size_divisor(self) -> int:
        return 1  # global pooling: any input size works

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, *spatial)`` -> pooled features ``(N, 2 * width)``."""
        for i, stage in enumerate(self.stages):
            x = stage(halve(x) if i else x)
        flat = x.flatten(2)
        return torch.cat([flat.mean(dim=2), flat.amax(dim=2)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


@register_model("resnet", kind="classifier", description="ResNet-style classifier (2D/3D) with basic residual blocks")
def resnet_classifier(**config) -> CNNClassifier:
    """The :class:`CNNClassifier` layout with ResNet basic blocks (``block="basic"``)."""
    config.setdefault("block", "basic")
    return CNNClassifier(**config)
