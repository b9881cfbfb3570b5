"""The model zoo: how the built-in models (``builtin:NAME``) are made from simulated images.

``python -m napari_bioimg.zoo build NAME`` trains one from the procedural simulator
(:mod:`napari_bioimg.core.sim`) with the engine's own training, in chunks: each chunk
trains on a fresh pool of generated scenes, starting from the previous chunk's
weights, and is saved in a work folder, so a stopped build resumes where it stopped.
The finished model file (with its card: generator version and settings, steps,
seconds, scores on simulated test scenes) is written atomically into
``napari_bioimg/zoo/weights/``. No real image is used.
"""

from .recipes import RECIPES, Recipe

__all__ = ["RECIPES", "Recipe"]
