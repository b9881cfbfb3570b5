"""Objects as exact instance labels: deformed ellipses / ellipsoids, clusters, dividing pairs.

Every object is an (n-dimensional) ellipsoid with a random orientation whose outline
is pushed in and out by a smooth random field. Where objects overlap, each pixel
goes to the object it lies deepest in (its distance to that object's outline is
largest), so touching objects meet along a fair border. Each label is then made one
connected piece (the largest; fragments become background) and objects left too
small are dropped: the labels are exact for the scene the optics render from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: Objects left with less than this share of their own ellipsoid's volume after overlaps are dropped.
MIN_KEPT = 0.3


@dataclass
class Blob:
    """One object: centre and radii in physical units (XY pixels), orientation, outline deformation."""

    center: np.ndarray
    radii: np.ndarray
    rotation: np.ndarray
    deformation: float = 0.0
    brightness: float = 1.0
    dividing: bool = False

    @property
    def mean_radius(self) -> float:
        return float(np.mean(self.radii))


def random_rotation(ndim: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((ndim, ndim)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def blob_box(blob: Blob, shape: tuple[int, ...], spacing: np.ndarray) -> tuple[slice, ...] | None:
    """The pixel box that holds ``blob`` (clipped to the image), or ``None`` when it lies outside."""
    reach = blob.radii.max() * (1.0 + 3.0 * blob.deformation) + 1.0
    lo = np.floor((blob.center - reach) / spacing).astype(int)
    hi = np.ceil((blob.center + reach) / spacing).astype(int) + 1
    lo, hi = np.maximum(lo, 0), np.minimum(hi, shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def blob_depth(blob: Blob, box: tuple[slice, ...], spacing: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Distance inside the outline (physical units; negative outside) over ``box``."""
    axes = [np.arange(s.start, s.stop) * sp - c for s, sp, c in zip(box, spacing, blob.center)]
    grids = np.meshgrid(*axes, indexing="ij")
    coords = np.stack([g.ravel() for g in grids])
    local = blob.rotation.T @ coords
    rho = np.sqrt(np.sum((local / blob.radii[:, None]) ** 2, axis=0)).reshape(grids[0].shape)
    limit = np.ones_like(rho)
    if blob.deformation > 0:
        sigma = np.maximum(0.35 * blob.mean_radius / spacing, 0.5)
        field = ndi.gaussian_filter(rng.standard_normal(rho.shape).astype(np.float32), sigma, mode="wrap")
        field /= max(float(field.std()), 1e-6)
        limit = np.clip(1.0 + blob.deformation * field, 0.5, 1.6)
    return ((limit - rho) * blob.mean_radius).astype(np.float32)


def paint(blobs: list[Blob], shape: tuple[int, ...], spacing: np.ndarray,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[Blob]]:
    """Rasterise ``blobs``: ``(labels, depth, kept blobs)``; label ``i`` is ``kept[i - 1]``."""
    labels = np.zeros(shape, np.int32)
    depth = np.zeros(shape, np.float32)
    volumes = np.zeros(len(blobs) + 1)
    for i, blob in enumerate(blobs, start=1):
        box = blob_box(blob, shape, spacing)
        if box is None:
            continue
        d = blob_depth(blob, box, spacing, rng)
        volumes[i] = np.count_nonzero(d > 0)
        win = d > depth[box]
        labels[box][win] = i
        depth[box][win] = d[win]
    kept: list[Blob] = []
    out = np.zeros(shape, np.int32)
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        mask = labels[sl] == i
        parts, n = ndi.label(mask)
        if n > 1:
            sizes = np.bincount(parts.ravel())
            sizes[0] = 0
            mask = parts == int(np.argmax(sizes))
        if mask.sum() < max(MIN_KEPT * volumes[i], 4):
            continue
        kept.append(blobs[i - 1])
        out[sl][mask] = len(kept)
    depth[out == 0] = 0.0
    return out, depth, kept


def scatter(shape: tuple[int, ...], spacing: np.ndarray, rng: np.random.Generator, *, diameter: float,
            size_spread: float, elongation: tuple[float, float], deformation: tuple[float, float], density: float,
            cluster_fraction: float, dividing_fraction: float, brightness_spread: float) -> list[Blob]:
    """Objects for one scene: how many, where (some in clusters), how big and how shaped."""
    ndim = len(shape)
    extent = np.asarray(shape) * spacing
    r0 = diameter / 2
    unit = np.pi * r0 ** 2 if ndim == 2 else 4 / 3 * np.pi * r0 ** 3
    n = int(rng.poisson(density * float(np.prod(extent)) / unit))
    blobs: list[Blob] = []
    for _ in range(n):
        r = r0 * float(np.exp(rng.normal(0, size_spread)))
        bright = float(np.exp(rng.normal(0, brightness_spread)))
        if blobs and rng.random() < cluster_fraction:
            near = blobs[int(rng.integers(len(blobs)))]
            direction = rng.standard_normal(ndim)
            direction /= np.linalg.norm(direction)
            center = near.center + direction * (near.mean_radius + r) * rng.uniform(0.75, 1.0)
        else:
            center = rng.uniform(-0.05, 1.05, ndim) * extent
        if rng.random() < dividing_fraction:
            blobs += _dividing(center, r, ndim, rng, bright)
            continue
        ratio = rng.uniform(*elongation)
        radii = np.full(ndim, r) * np.exp(rng.normal(0, 0.05, ndim))
        radii[0] *= ratio ** 0.5
        radii[-1] /= ratio ** 0.5
        blobs.append(Blob(center, radii, random_rotation(ndim, rng), rng.uniform(*deformation), bright))
    return blobs


def _dividing(center: np.ndarray, r: float, ndim: int, rng: np.random.Generator, bright: float) -> list[Blob]:
    """Two compact, bright daughter nuclei side by side (late anaphase / telophase)."""
    rot = random_rotation(ndim, rng)
    axis = rot[:, 0]
    radii = np.full(ndim, 0.65 * r)
    radii[0] = 0.35 * r
    gap = r * rng.uniform(0.45, 0.8)
    boost = bright * rng.uniform(1.3, 2.2)
    return [Blob(center + sign * gap * axis, radii.copy(), rot, 0.05, boost, dividing=True) for sign in (-1, 1)]
