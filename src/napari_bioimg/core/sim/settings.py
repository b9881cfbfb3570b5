"""The simulator's settings: every range a scene's parameters are drawn from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

VERSION = "1.0"
"""Generator version: changes whenever the same seed and settings would give a different scene."""


@dataclass(frozen=True)
class SimSettings:
    """Ranges the simulator draws each scene's parameters from (lengths in pixels of the XY grid).

    A scene first draws its own values from these ranges (one typical diameter, one
    density, one noise level...), then each object varies around them: images differ
    a lot between scenes and moderately within one, as real images do.
    """

    diameter: tuple[float, float] = (12.0, 60.0)
    """Typical object diameter of a scene (drawn log-uniformly)."""
    size_spread: float = 0.25
    """Relative spread of object diameters around the scene's typical one."""
    elongation: tuple[float, float] = (1.0, 1.8)
    """Ratio of an object's longest to shortest axis."""
    deformation: tuple[float, float] = (0.0, 0.25)
    """Amplitude of smooth random outline deformation (relative to the radius)."""
    density: tuple[float, float] = (0.05, 0.55)
    """Fraction of the image area the objects would cover before overlaps are resolved."""
    cluster_fraction: tuple[float, float] = (0.0, 0.6)
    """Share of objects placed touching a neighbour (clusters)."""
    dividing_fraction: tuple[float, float] = (0.0, 0.15)
    """Share of objects that are dividing pairs (two small bright halves side by side)."""
    brightness_spread: tuple[float, float] = (0.1, 0.6)
    """Log-normal spread of object brightness."""
    texture: tuple[float, float] = (0.0, 0.5)
    """Amplitude of the chromatin-like texture inside objects."""
    spots: tuple[float, float] = (0.0, 0.4)
    """Share of objects with bright spots (nucleoli, chromocentres)."""
    rim: tuple[float, float] = (-0.3, 0.3)
    """Edge brightening (>0) or darkening (<0)."""
    background: tuple[float, float] = (0.0, 0.3)
    """Constant background relative to the brightest objects."""
    out_of_focus: tuple[float, float] = (0.0, 0.5)
    """Brightness of unlabelled out-of-focus objects (blurred) relative to in-focus ones."""
    haze: tuple[float, float] = (0.0, 0.3)
    """Share of the in-focus light spread as a wide glow."""
    illumination: tuple[float, float] = (0.0, 0.5)
    """Depth of uneven illumination (0: flat)."""
    psf_sigma: tuple[float, float] = (0.5, 2.0)
    """Gaussian PSF sigma in XY (pixels)."""
    photons: tuple[float, float] = (15.0, 3000.0)
    """Photons at the brightest object (log-uniform): lower is noisier."""
    read_noise: tuple[float, float] = (0.0, 8.0)
    """Gaussian camera noise (photon units)."""
    anisotropy: tuple[float, float] = (1.0, 4.0)
    """3D only: Z step / XY pixel size."""
    psf_z_ratio: tuple[float, float] = (1.5, 3.5)
    """3D only: PSF sigma along Z relative to XY (physical units)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SimSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known})
