"""Scenes: one drawn set of parameters, objects placed and labelled, the image rendered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from .optics import camera, illumination, objects_light, out_of_focus
from .settings import SimSettings
from .shapes import paint, scatter


@dataclass
class Scene:
    """A simulated image, its exact instance labels and the parameters drawn for it."""

    image: np.ndarray
    """float32, ``(Y, X)`` or ``(Z, Y, X)``."""
    labels: np.ndarray
    """Instance ids (0 = background, 1..n, each one connected piece), same shape."""
    params: dict[str, Any] = field(default_factory=dict)
    """The values drawn for this scene (diameter, density, photons, anisotropy, ...)."""
    clean: np.ndarray | None = None
    """The noise-free image on the same scale (a denoiser's reference)."""


def _draw(rng: np.random.Generator, span: tuple[float, float], log: bool = False) -> float:
    lo, hi = span
    if log and lo > 0:
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return float(rng.uniform(lo, hi))


def make_scene(shape: tuple[int, ...], seed: int | list[int] | None = 0,
               settings: SimSettings | None = None) -> Scene:
    """Simulate one 2D ``(Y, X)`` or 3D ``(Z, Y, X)`` fluorescence image of nuclei with exact labels.

    Parameters
    ----------
    shape
        Pixels of the image; in 3D the Z step is drawn from ``settings.anisotropy``
        (objects look flatter in Z pixels when it is coarse).
    seed
        Everything drawn follows from it: the same seed and settings give the same scene.
    settings
        The ranges the scene's parameters are drawn from (:class:`SimSettings`).
    """
    s = settings or SimSettings()
    shape = tuple(int(v) for v in shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"a scene is 2D or 3D, got shape {shape}")
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    anisotropy = _draw(rng, s.anisotropy) if ndim == 3 else 1.0
    spacing = np.array([anisotropy] + [1.0] * (ndim - 1)) if ndim == 3 else np.ones(2)
    p = {
        "diameter": _draw(rng, s.diameter, log=True), "density": _draw(rng, s.density),
        "cluster_fraction": _draw(rng, s.cluster_fraction), "dividing_fraction": _draw(rng, s.dividing_fraction),
        "brightness_spread": _draw(rng, s.brightness_spread), "deformation_max": _draw(rng, s.deformation),
        "texture": _draw(rng, s.texture), "spots": _draw(rng, s.spots), "rim": _draw(rng, s.rim),
        "background": _draw(rng, s.background), "out_of_focus": _draw(rng, s.out_of_focus),
        "haze": _draw(rng, s.haze), "illumination": _draw(rng, s.illumination),
        "psf_sigma": _draw(rng, s.psf_sigma), "photons": _draw(rng, s.photons, log=True),
        "read_noise": _draw(rng, s.read_noise), "anisotropy": anisotropy,
    }
    blobs = scatter(shape, spacing, rng, diameter=p["diameter"], size_spread=s.size_spread,
                    elongation=s.elongation, deformation=(0.0, p["deformation_max"]), density=p["density"],
                    cluster_fraction=p["cluster_fraction"], dividing_fraction=p["dividing_fraction"],
                    brightness_spread=p["brightness_spread"])
    labels, depth, kept = paint(blobs, shape, spacing, rng)
    light = objects_light(labels, depth, kept, spacing, rng, texture=p["texture"], spots=p["spots"], rim=p["rim"])
    if p["out_of_focus"] > 0.02:
        light += p["out_of_focus"] * out_of_focus(shape, spacing, p["diameter"], rng.uniform(0.05, 0.3), rng)
    if p["haze"] > 0.01:
        light += p["haze"] * ndi.gaussian_filter(light, 1.5 * p["diameter"] / spacing)
    light *= illumination(shape, p["illumination"], rng)
    sigma = np.full(ndim, p["psf_sigma"])
    if ndim == 3:
        p["psf_z"] = p["psf_sigma"] * _draw(rng, s.psf_z_ratio)
        sigma[0] = p["psf_z"] / anisotropy
    light = ndi.gaussian_filter(light, sigma) + p["background"]
    image, clean = camera(light, rng, photons=p["photons"], read_noise=p["read_noise"])
    p["n_objects"] = len(kept)
    return Scene(image, labels.astype(np.uint16 if len(kept) < 65535 else np.uint32), p, clean)


def make_pool(n: int, shape: tuple[int, ...], seed: int = 0, settings: SimSettings | None = None,
              *, first: int = 0) -> list[Scene]:
    """``n`` scenes with seeds ``[seed, first + i]`` (independent streams; any one can be remade alone)."""
    return [make_scene(shape, [seed, first + i], settings) for i in range(n)]
