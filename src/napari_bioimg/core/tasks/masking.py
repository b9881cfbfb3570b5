"""Blind-spot masking for self-supervised denoising (the Noise2Void family).

A small fraction of the pixels of each training patch is *masked*: each one's value
is replaced by something computed from its neighbours (never from the pixel
itself), the network sees the altered patch, and the loss compares its output with
the original values at the masked pixels only. Because the network never sees the
value it must predict, it cannot learn to copy the noise; with pixel-wise
independent noise the best it can do is predict the clean signal.

Masked pixels are drawn on a jittered grid (one per cell), so they are spread
evenly and rarely neighbour each other. Replacement is either the *median* of the
surrounding window (N2V2, fewer checkerboard artefacts) or a *random* neighbour
(the original Noise2Void).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from ..errors import ConfigError

REPLACE_MODES = ("median", "random")


def grid_span(fraction: float, spatial_dims: int) -> int:
    """Grid cell side such that one pixel per cell is about ``fraction`` of the pixels."""
    if not 0 < fraction <= 0.25:
        raise ConfigError(f"the masked fraction must be in (0, 0.25], got {fraction}; Noise2Void uses 0.002-0.02")
    return max(2, int(round(fraction ** (-1.0 / spatial_dims))))


def grid_coords(spatial: tuple[int, ...], span: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """One random pixel in each ``span``-sided grid cell, for ``n`` independent images.

    Returns ``(n, cells, len(spatial))`` int64 coordinates, all inside ``spatial``
    (cells cut by the border draw from their smaller extent).
    """
    origins = np.stack(np.meshgrid(*[np.arange(0, s, span) for s in spatial], indexing="ij"), -1)
    origins = origins.reshape(-1, len(spatial))
    extent = np.minimum(span, np.asarray(spatial) - origins)  # cells at the border may be smaller
    jitter = np.floor(rng.random((n, *origins.shape)) * extent).astype(np.int64)
    return origins[None] + jitter


def window_offsets(spatial_dims: int, radius: int) -> np.ndarray:
    """All offsets of a ``(2 radius + 1)``-sided window except the centre, ``(K, spatial_dims)``."""
    rng1 = range(-radius, radius + 1)
    offs = np.array([o for o in itertools.product(rng1, repeat=spatial_dims) if any(o)], dtype=np.int64)
    return offs


def _neighbour(coords: np.ndarray, offsets: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
    """``coords + offsets``, each component mirrored (offset negated) where it leaves the image.

    With a side of at least ``2 * radius + 1`` the mirrored offset lands inside, and it
    is never zero, so the result is never the pixel itself.
    """
    size = np.asarray(spatial)
    target = coords + offsets
    outside = (target < 0) | (target >= size)
    return np.where(outside, coords - offsets, target)


def mask_batch(x: torch.Tensor, fraction: float, rng: np.random.Generator, radius: int = 2,
               replace: str = "median", region: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Blind-spot masking of a batch.

    Parameters
    ----------
    x
        ``(B, C, *spatial)`` input; channels are masked independently.
    fraction
        Approximate fraction of pixels masked per image and channel.
    rng
        Source of randomness (seeded runs repeat).
    radius
        Half-width of the neighbourhood the replacement comes from (2: a 5x5 window).
    replace
        ``"median"`` of the window without its centre (N2V2) or a ``"random"``
        neighbour in it (Noise2Void).
    region
        Optional ``(B, C, *spatial)`` bool; masked pixels outside it are dropped.

    Returns
    -------
    masked, mask
        A new tensor with the masked pixels replaced (``x`` is not modified) and the
        bool mask of those pixels, both shaped like ``x``.
    """
    if replace not in REPLACE_MODES:
        raise ConfigError(f"replacement must be one of {', '.join(REPLACE_MODES)}, got {replace!r}")
    b, c = x.shape[:2]
    spatial = tuple(x.shape[2:])
    nd = len(spatial)
    if min(spatial) < 2 * radius + 1:
        radius = max(1, (min(spatial) - 1) // 2)
    if min(spatial) < 3:
        raise ConfigError(f"patches of {spatial} pixels are too small for blind-spot masking (need >= 3 per axis)")
    coords = grid_coords(spatial, grid_span(fraction, nd), b * c, rng)  # (BC, M, nd)
    m = coords.shape[1]
    flat_bc = np.repeat(np.arange(b * c), m)
    coords = coords.reshape(-1, nd)
    strides = np.cumprod((1,) + spatial[::-1])[:-1][::-1]
    centre = coords @ strides
    offsets = window_offsets(nd, radius)
    if replace == "random":
        pick = offsets[rng.integers(0, len(offsets), len(coords))]
        source = _neighbour(coords, pick, spatial) @ strides  # (BCM,)
    else:
        source = np.stack([_neighbour(coords, o[None], spatial) @ strides for o in offsets], 1)  # (BCM, K)
    dev = x.device
    flat = x.reshape(b * c, -1)
    bc_t = torch.from_numpy(flat_bc).to(dev)
    centre_t = torch.from_numpy(centre).to(dev)
    src_t = torch.from_numpy(source).to(dev)
    if replace == "random":
        values = flat[bc_t, src_t]
    else:
        values = flat[bc_t[:, None], src_t].median(dim=1).values
    masked = flat.clone()
    masked[bc_t, centre_t] = values.to(masked.dtype)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[bc_t, centre_t] = True
    mask = mask.view(x.shape)
    if region is not None:
        mask &= region
        masked = torch.where(mask, masked.view(x.shape), x)
        return masked, mask
    return masked.view(x.shape), mask


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked pixels whose target is finite (NaN = ignore).

    Returns 0 (with a gradient path) when no pixel qualifies, so a patch that falls
    entirely in an ignored area does not break training.
    """
    use = mask & torch.isfinite(target)
    diff = torch.where(use, prediction.float() - torch.nan_to_num(target.float()), torch.zeros((), device=target.device))
    return (diff**2).sum() / use.sum().clamp(min=1)
