"""U-Net with a convolutional GRU over time: a window of frames in, the centre frame out.

Shape contract: input ``(N, F * channels_per_frame, *spatial)`` — the frames
``t-k .. t+k`` stacked along the channel axis in frame order, exactly what the
engine's temporal context (``TrainConfig.temporal_context = k``, see
:mod:`..data.temporal`) feeds a 2D model — and output ``(N, out_channels, *spatial)``
for the centre frame ``t``. Any spatial size works (padded to a multiple of
``2**depth`` and cropped back).

How it differs from giving a plain U-Net the frames as channels: every frame goes
through the *same* encoder (the weights do not depend on the frame's position),
and the frames meet only through a ConvGRU run forwards (``t-k -> t``) and
backwards (``t+k -> t``) over the window, at the bottleneck and, with
``fuse="all"``, at every skip level too. The decoder sees the fused features of
the centre frame. With ``F = 1`` (no temporal context) it is a U-Net whose
bottleneck has a gated convolution.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBlock, conv, pad_to_multiple
from .registry import halves_depth_times, register_model
from .unet import Down, Up


class ConvGRUCell(nn.Module):
    """A GRU whose gates are 3x3 convolutions: ``h' = (1 - z) * h + z * tanh(W [x, r * h])``."""

    def __init__(self, spatial_dims: int, channels: int):
        super().__init__()
        self.gates = conv(spatial_dims, 2 * channels, 2 * channels, 3, padding=1)
        self.candidate = conv(spatial_dims, 2 * channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        n = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))
        return (1 - z) * h + z * n


class TemporalFusion(nn.Module):
    """Fuse ``(N, F, C, *S)`` features of a window into the centre frame's ``(N, C, *S)``.

    A forward GRU runs over frames ``0 .. centre`` and a backward one over
    ``F-1 .. centre``; their final states and the centre frame's own features are
    mixed by a 1x1 convolution and added to the centre's features (a residual: at
    initialisation the centre frame passes through unchanged).
    """

    def __init__(self, spatial_dims: int, channels: int):
        super().__init__()
        self.forward_cell = ConvGRUCell(spatial_dims, channels)
        self.backward_cell = ConvGRUCell(spatial_dims, channels)
        self.mix = conv(spatial_dims, 3 * channels, channels, 1)
        nn.init.zeros_(self.mix.weight)
        nn.init.zeros_(self.mix.bias)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        frames = seq.shape[1]
        centre = frames // 2
        h_fwd = torch.zeros_like(seq[:, 0])
        for t in range(centre + 1):
            h_fwd = self.forward_cell(seq[:, t], h_fwd)
        h_bwd = torch.zeros_like(seq[:, 0])
        for t in range(frames - 1, centre - 1, -1):
            h_bwd = self.backward_cell(seq[:, t], h_bwd)
        own = seq[:, centre]
        return own + self.mix(torch.cat([own, h_fwd, h_bwd], dim=1))


@register_model("unet-gru", kind="dense",
                description="U-Net with a ConvGRU over the frames of a time window (temporal context)",
                protocol=halves_depth_times)
class UNetGRU(nn.Module):
    """A shared per-frame U-Net encoder, ConvGRU fusion over time, a decoder for the centre frame.

    Parameters
    ----------
    spatial_dims
        2 or 3 (frames of a 3D time-lapse).
    in_channels
        ``frames * channels_per_frame``; the frame count must be odd (``2k + 1``).
    out_channels
        Output channels (classes, or image channels) of the centre frame.
    depth, base_channels, norm, pool, top_skip, upsample, dropout
        As for the ``unet`` family.
    residual
        Add the centre frame's input to the output (needs ``out_channels ==
        channels_per_frame``).
    channels_per_frame
        Image channels of one frame (1 for a single-channel time-lapse).
    fuse
        ``"bottleneck"`` (default): frames meet only at the lowest resolution;
        ``"all"``: a ConvGRU at every level the decoder reads, so its skips also
        carry the neighbours (fine detail), at 2.5x the cost per step (measured on a
        CPU, depth 3, 128x128 patches: 5.8 s vs 2.3 s per batch of 8; frames as
        channels: 0.9 s).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 1,
        depth: int = 2,
        base_channels: int = 16,
        norm: str = "batch",
        pool: str = "max",
        top_skip: bool = True,
        upsample: str = "deconv",
        residual: bool = False,
        dropout: float = 0.0,
        channels_per_frame: int = 1,
        fuse: str = "bottleneck",
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if not 1 <= depth <= 6:
            raise ValueError(f"depth must be between 1 and 6, got {depth}")
        if channels_per_frame < 1 or in_channels % channels_per_frame:
            raise ValueError(f"in_channels ({in_channels}) must be a multiple of channels_per_frame "
                             f"({channels_per_frame}): frames are stacked along the channels")
        frames = in_channels // channels_per_frame
        if frames % 2 == 0:
            raise ValueError(f"the window must have an odd number of frames (2k + 1), got {frames}: "
                             f"in_channels {in_channels} / channels_per_frame {channels_per_frame}")
        if fuse not in ("bottleneck", "all"):
            raise ValueError(f"fuse must be 'bottleneck' or 'all', got {fuse!r}")
        if residual and out_channels != channels_per_frame:
            raise ValueError("residual=True needs out_channels == channels_per_frame")
        self.spatial_dims, self.depth, self.residual, self.top_skip = spatial_dims, depth, residual, top_skip
        self.frames, self.channels_per_frame, self.fuse = frames, channels_per_frame, fuse
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.stem = ConvBlock(spatial_dims, channels_per_frame, widths[0], norm)
        self.downs = nn.ModuleList(
            Down(spatial_dims, widths[i], widths[i + 1], norm, pool, dropout if i == depth - 1 else 0.0)
            for i in range(depth)
        )
        # one fusion per level that the decoder reads: the bottleneck, and the skips with fuse="all"
        used = [i for i in range(depth + 1) if i == depth or (fuse == "all" and (i > 0 or top_skip))]
        self.fused_levels = used
        self.fusions = nn.ModuleDict({str(i): TemporalFusion(spatial_dims, widths[i]) for i in used})
        self.ups = nn.ModuleList(
            Up(spatial_dims, widths[i + 1], widths[i] if (i > 0 or top_skip) else 0, widths[i], norm,
               upsample=upsample)
            for i in reversed(range(depth))
        )
        self.head = conv(spatial_dims, widths[0], out_channels, 1)

    @property
    def size_divisor(self) -> int:
        return halves_depth_times(self.depth).size_divisor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, f, c = x.shape[0], self.frames, self.channels_per_frame
        centre = f // 2
        own_input = x[:, centre * c:(centre + 1) * c]
        x, crop = pad_to_multiple(x, self.size_divisor)
        frames = x.reshape(n * f, c, *x.shape[2:])  # every frame through the same encoder
        feats = [self.stem(frames)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        levels = []
        for i, feat in enumerate(feats):
            seq = feat.reshape(n, f, *feat.shape[1:])
            levels.append(self.fusions[str(i)](seq) if str(i) in self.fusions else seq[:, centre])
        y = levels.pop()
        for level, up in zip(reversed(range(self.depth)), self.ups):
            skip = levels.pop()
            y = up(y, skip if (level > 0 or self.top_skip) else None)
        y = self.head(y)[(slice(None), slice(None), *crop)]
        return y + own_input if self.residual else y
