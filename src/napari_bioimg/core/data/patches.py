"""Training data: validation split, patch sampling near annotations, augmentation.

Conventions: inputs are ``(N, C, *spatial)`` float32, already normalised. Targets
are either class indices ``(N, *spatial)`` int64 with ``-1`` for "not annotated"
(ignored by the loss), or images ``(N, C', *spatial)`` float32 with NaN where the
loss must ignore them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import InputError
from ..settings.defaults import PATCH_2D, PATCH_3D

IGNORE = -1


@runtime_checkable
class Sampler(Protocol):
    """What the training loop draws its batches from, however the data is held.

    One image in memory (:class:`PatchSampler`), a data set read patch by patch
    (:class:`~.sampling.DataSetSampler`, maybe behind :class:`~.sampling.Prefetch`)
    and a task's items (:class:`~.objects.ObjectSampler`) all answer it.
    """

    patch: tuple[int, ...]
    """The spatial size of a training input."""

    def sample(self, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch ``(x, y)`` on ``device``."""

    def rng_state(self) -> dict | None:
        """The state of a random stream of the sampler's own as of the batches returned (stored with the model
        to resume), or ``None`` when it draws from the loop's stream."""

    def close(self) -> None:
        """Stop whatever the sampler runs in the background (reader threads, a batch prepared ahead)."""


@dataclass(frozen=True)
class ValRegion:
    """A validation crop: one sample and a box in its spatial dims."""

    sample: int
    box: tuple[slice, ...]


def split_validation(annotated: np.ndarray, val_fraction: float) -> list[ValRegion]:
    """Choose held-apart regions holding about ``val_fraction`` of the annotations.

    With 4 or more annotated samples (frames, slices) whole samples are held apart,
    evenly spread; otherwise a slab at the end of the longest spatial axis of each
    sample is, cut so that it holds about ``val_fraction`` of the annotated pixels.
    Returns ``[]`` when there is too little annotation to spare any.
    """
    if val_fraction <= 0:
        return []
    n = annotated.shape[0]
    spatial = annotated.shape[1:]
    counts = annotated.reshape(n, -1).sum(axis=1)
    with_annotation = np.flatnonzero(counts)
    if len(with_annotation) >= 4:
        k = max(1, int(round(val_fraction * len(with_annotation))))
        picks = with_annotation[np.linspace(0, len(with_annotation) - 1, k + 2)[1:-1].round().astype(int)]
        return [ValRegion(int(i), tuple(slice(0, s) for s in spatial)) for i in np.unique(picks)]
    axis = int(np.argmax(spatial))
    regions = []
    for i in with_annotation:
        coords = np.nonzero(annotated[i])[axis]
        if coords.size < 20:
            continue
        cut = int(np.quantile(coords, 1 - val_fraction))
        cut = max(cut, 1)
        if not (coords < cut).any() or not (coords >= cut).any():
            continue
        box = [slice(0, s) for s in spatial]
        box[axis] = slice(cut, spatial[axis])
        regions.append(ValRegion(int(i), tuple(box)))
    return regions


def val_mask(shape: tuple[int, ...], regions: list[ValRegion]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for r in regions:
        mask[(r.sample, *r.box)] = True
    return mask


def pad_to_patch(inputs: np.ndarray, targets: np.ndarray, patch: tuple[int, ...], target_is_index: bool):
    """Reflect-pad samples smaller than the patch (targets padded as 'ignore')."""
    spatial = inputs.shape[2:]
    extra = [max(0, p - s) for p, s in zip(patch, spatial)]
    if not any(extra):
        return inputs, targets
    pad_sp = [(0, e) for e in extra]
    mode = "reflect" if all(e < s for e, s in zip(extra, spatial)) else "symmetric"
    inputs = np.pad(inputs, [(0, 0), (0, 0), *pad_sp], mode=mode)
    if target_is_index:
        targets = np.pad(targets, [(0, 0), *pad_sp], constant_values=IGNORE)
    else:
        targets = np.pad(targets.astype(np.float32), [(0, 0), (0, 0), *pad_sp], constant_values=np.nan)
    return inputs, targets


class PatchSampler:
    """Random patches, most of them centred near annotated pixels, with augmentation.

    Parameters
    ----------
    inputs
        ``(N, C, *spatial)`` float32.
    targets
        ``(N, *spatial)`` int64 (index targets) or ``(N, C', *spatial)`` float32.
    sample_from
        ``(N, *spatial)`` bool: pixels a patch should be centred on (annotated,
        training part). ``None`` samples uniformly.
    patch
        Patch size per spatial dim (already fitted to the image).
    rescale
        Include random zoom (0.85-1.15, interpolated) in the augmentation. Off for
        self-supervised denoising: interpolation correlates the noise of
        neighbouring pixels, which a blind-spot network would then learn.
    intensity
        Include a random gain and offset per patch in the augmentation (robustness
        to exposure changes; pointless when the model only ever sees this image).
    """

    def __init__(self, inputs, targets, sample_from, patch, rng: np.random.Generator, augment: bool = True,
                 focus: float = 0.9, max_coords: int = 500_000, rescale: bool = True, intensity: bool = True):
        self.target_is_index = targets.dtype.kind in "iu"
        self.inputs, self.targets = pad_to_patch(inputs, targets, patch, self.target_is_index)
        self.patch = tuple(int(p) for p in patch)
        self.rng = rng
        self.augment = augment
        self.rescale = rescale
        self.intensity = intensity
        self.focus = focus
        self.spatial = self.inputs.shape[2:]
        self.picker = None
        """Optional ``rng -> (sample, centre) | None``: a patch centre chosen from outside (live training:
        recent annotation edits), ``None`` to fall back to the usual choice."""
        self.coords = None
        if sample_from is not None:
            coords = np.argwhere(sample_from)
            if len(coords) == 0:
                raise InputError("no annotated pixels are left for training (all fall in the validation part)")
            if len(coords) > max_coords:
                coords = coords[rng.choice(len(coords), max_coords, replace=False)]
            self.coords = coords

    def _start(self) -> tuple[int, tuple[int, ...]]:
        n = self.inputs.shape[0]
        picked = self.picker(self.rng) if self.picker is not None else None
        if picked is not None:
            return picked[0], self._around(picked[1])
        if self.coords is not None and self.rng.random() < self.focus:
            c = self.coords[self.rng.integers(len(self.coords))]
            return int(c[0]), self._around(c[1:])
        sample = int(self.rng.integers(n))
        return sample, tuple(int(self.rng.integers(0, s - p + 1)) for p, s in zip(self.patch, self.spatial))

    def _around(self, centre) -> tuple[int, ...]:
        """Patch corner for a patch near ``centre`` (jittered by up to a quarter patch, inside the image)."""
        starts = []
        for ce, p, s in zip(centre, self.patch, self.spatial):
            jitter = self.rng.integers(-(p // 4), p // 4 + 1)
            starts.append(int(np.clip(ce - p // 2 + jitter, 0, s - p)))
        return tuple(starts)

    def _crop(self, sample: int, starts: tuple[int, ...], size: tuple[int, ...]):
        box = tuple(slice(a, a + p) for a, p in zip(starts, size))
        x = self.inputs[(sample, slice(None), *box)]
        y = self.targets[(sample, *box)] if self.target_is_index else self.targets[(sample, slice(None), *box)]
        return x, y

    def sample(self, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch ``(x, y)`` on ``device``, augmented when enabled."""
        xs, ys = [], []
        for _ in range(batch_size):
            sample, starts = self._start()
            zoom = self.augment and self.rescale
            scale = float(np.exp(self.rng.uniform(np.log(0.85), np.log(1.15)))) if zoom else 1.0
            size = tuple(min(s, max(8, int(round(p * scale)))) for p, s in zip(self.patch, self.spatial))
            starts = tuple(min(a, s - q) for a, s, q in zip(starts, self.spatial, size))
            x, y = self._crop(sample, starts, size)
            x = torch.from_numpy(np.ascontiguousarray(x))
            y = torch.from_numpy(np.ascontiguousarray(y))
            if size != self.patch:
                x, y = self._resize(x, y)
            xs.append(x)
            ys.append(y)
        x = torch.stack(xs).to(device, non_blocking=True)
        y = torch.stack(ys).to(device, non_blocking=True)
        if self.augment:
            x, y = self._augment(x, y)
        return x, y

    def rng_state(self) -> None:
        return None  # it draws from the loop's stream

    def close(self) -> None:
        pass  # nothing runs in the background

    def _resize(self, x: torch.Tensor, y: torch.Tensor):
        return resize_pair(x, y, self.patch, self.target_is_index)

    def _augment(self, x: torch.Tensor, y: torch.Tensor):
        return augment_pair(x, y, self.rng, self.target_is_index, self.intensity,
                            getattr(self, "augment_target_intensity", True))


def resize_pair(x: torch.Tensor, y: torch.Tensor, patch: tuple[int, ...], target_is_index: bool):
    """Resample one ``(C, *size)`` input and its target to ``patch`` (nearest for class indices)."""
    mode = "bilinear" if x.ndim == 3 else "trilinear"
    x = F.interpolate(x[None], size=patch, mode=mode, align_corners=False)[0]
    if target_is_index:
        y = F.interpolate(y[None, None].float(), size=patch, mode="nearest")[0, 0].long()
    else:  # an image target is resampled like the input, so the two stay aligned
        y = F.interpolate(y[None], size=patch, mode=mode, align_corners=False)[0]
    return x, y


def augment_pair(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator, target_is_index: bool,
                 intensity: bool = True, target_intensity: bool = True):
    """Flips, 90-degree turns in YX, and (if ``intensity``) a gain/offset per sample of a batch.

    ``x`` is ``(B, C, *patch)``; ``y`` ``(B, *patch)`` class indices or ``(B, C', *patch)``
    images (which get the input's gain and offset when ``target_intensity``).
    """
    nd = x.ndim - 2
    sp_x = list(range(2, 2 + nd))
    sp_y = [d - (1 if target_is_index else 0) for d in sp_x]
    for dx, dy in zip(sp_x, sp_y):
        if rng.random() < 0.5:
            x, y = x.flip(dx), y.flip(dy)
    if x.shape[-1] == x.shape[-2]:
        k = int(rng.integers(4))
        if k:
            x, y = torch.rot90(x, k, dims=(sp_x[-2], sp_x[-1])), torch.rot90(y, k, dims=(sp_y[-2], sp_y[-1]))
    if not intensity:
        return x.contiguous(), y.contiguous()
    b = x.shape[0]
    gain = torch.from_numpy(np.exp(rng.uniform(np.log(0.8), np.log(1.25), b))).float().to(x.device)
    offset = torch.from_numpy(rng.uniform(-0.1, 0.1, b)).float().to(x.device)
    shape = (b,) + (1,) * (x.ndim - 1)
    x = x * gain.view(shape) + offset.view(shape)
    if not target_is_index and target_intensity:
        y = y * gain.view((b,) + (1,) * (y.ndim - 1)) + offset.view((b,) + (1,) * (y.ndim - 1))
    return x.contiguous(), y.contiguous()


def fit_patch(requested: tuple[int, ...] | int | None, spatial: tuple[int, ...], divisor: int | tuple[int, ...],
              default_2d: int = PATCH_2D, default_3d: tuple[int, int, int] = PATCH_3D) -> tuple[int, ...]:
    """Patch size per spatial dim: requested (or default), no larger than needed, a multiple of ``divisor``."""
    nd = len(spatial)
    if requested is None:
        req = (default_2d,) * 2 if nd == 2 else default_3d
    elif isinstance(requested, int):
        req = (requested,) * nd
    else:
        req = tuple(requested)
        if len(req) == 1:
            req = req * nd
        if len(req) != nd:
            raise InputError(f"patch size {requested} has {len(req)} values but the data is {nd}D")
    divs = (divisor,) * nd if isinstance(divisor, (int, np.integer)) else tuple(divisor)
    out = []
    for r, s, d in zip(req, spatial, divs):
        size = min(int(r), s)
        size = max(int(d), int(np.ceil(size / d)) * int(d))
        out.append(size)
    return tuple(out)
