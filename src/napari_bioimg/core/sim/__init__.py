"""A procedural microscopy simulator: fluorescent nuclei with exact instance labels.

Domain-randomised scenes (sizes, shapes, density, touching and dividing objects,
textures, background, out-of-focus light, uneven illumination, PSF blur,
Poisson-Gaussian noise, anisotropic 3D) for making the built-in models
(:mod:`napari_bioimg.zoo`) and for tests. numpy / scipy only; every scene is
determined by its seed and :class:`SimSettings`.
"""

from .scenes import Scene, make_pool, make_scene
from .settings import VERSION, SimSettings

__all__ = ["VERSION", "Scene", "SimSettings", "make_pool", "make_scene"]
