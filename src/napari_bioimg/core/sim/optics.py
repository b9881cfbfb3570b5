"""From objects to a microscope image: texture, background, out-of-focus light, illumination, PSF, noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .shapes import Blob, paint, scatter


def smooth_noise(shape: tuple[int, ...], sigma, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian-filtered white noise."""
    field = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return field / max(float(field.std()), 1e-6)


def objects_light(labels: np.ndarray, depth: np.ndarray, blobs: list[Blob], spacing: np.ndarray,
                  rng: np.random.Generator, *, texture: float, spots: float, rim: float) -> np.ndarray:
    """In-focus fluorescence of the labelled objects (before blur and noise), brightest objects near 1."""
    bright = np.array([0.0] + [b.brightness for b in blobs], np.float32)
    inside = labels > 0
    edge = rng.uniform(0.5, 2.5)
    profile = np.clip(depth / edge, 0.0, 1.0) ** rng.uniform(0.5, 1.5)
    profile *= 1.0 + rim * np.exp(-depth / max(2.0, 3 * edge))
    grain = rng.uniform(0.8, 3.0) / spacing
    light = bright[labels] * profile
    if texture > 0:
        light *= np.clip(1.0 + texture * smooth_noise(labels.shape, grain, rng), 0.2, None)
    if spots > 0 and blobs:
        chosen = np.flatnonzero(rng.random(len(blobs)) < spots) + 1
        marks = np.zeros(labels.shape, np.float32)
        for lab in chosen:
            where = np.flatnonzero(labels.ravel() == lab)
            if where.size:
                marks.flat[rng.choice(where, size=min(where.size, int(rng.integers(1, 4))))] = 1.0
        if marks.any():
            size = np.median([b.mean_radius for b in blobs]) * rng.uniform(0.1, 0.2)
            blobs_light = ndi.gaussian_filter(marks, max(size, 0.7) / spacing)
            blobs_light /= max(float(blobs_light.max()), 1e-6)
            light += rng.uniform(0.3, 1.0) * blobs_light * inside
    top = np.percentile(light[inside], 95) if inside.any() else 1.0
    return (light / max(float(top), 1e-6)).astype(np.float32)


def out_of_focus(shape: tuple[int, ...], spacing: np.ndarray, diameter: float, density: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Unlabelled objects above or below the focal plane: blurred, faint glows (peak near 1)."""
    blobs = scatter(shape, spacing, rng, diameter=diameter, size_spread=0.25, elongation=(1.0, 1.5),
                    deformation=(0.0, 0.0), density=density, cluster_fraction=0.2, dividing_fraction=0.0,
                    brightness_spread=0.4)
    if not blobs:
        return np.zeros(shape, np.float32)
    labels, _, kept = paint(blobs, shape, spacing, rng)
    bright = np.array([0.0] + [b.brightness for b in kept], np.float32)
    glow = ndi.gaussian_filter(bright[labels], rng.uniform(0.2, 0.5) * diameter / spacing)
    return glow / max(float(glow.max()), 1e-6)


def illumination(shape: tuple[int, ...], depth: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative field in ``[1 - depth, 1]``: vignetting and a gradient."""
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij", sparse=True)
    centre = rng.uniform(-0.7, 0.7, len(shape))
    slope = rng.standard_normal(len(shape))
    field = sum((g - c) ** 2 for g, c in zip(grids, centre)) + sum(s * g for s, g in zip(slope, grids))
    field = field - field.min()
    field = field / max(float(field.max()), 1e-6)
    return (1.0 - depth * field).astype(np.float32)


def camera(light: np.ndarray, rng: np.random.Generator, *, photons: float,
           read_noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Poisson shot noise at ``photons`` per unit of light, Gaussian read noise, gain and offset.

    Returns ``(noisy, clean)``: the recorded image and its noise-free expectation on the same scale.
    """
    expected = np.clip(light, 0, None) * photons
    counts = rng.poisson(expected).astype(np.float32)
    counts += rng.normal(0.0, read_noise, light.shape).astype(np.float32)
    gain, offset = rng.uniform(0.5, 4.0), rng.uniform(0.0, 500.0)
    return (counts * gain + offset).astype(np.float32), (expected * gain + offset).astype(np.float32)
