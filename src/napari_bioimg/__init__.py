"""napari-bioimg: deep learning for microscopy images, in napari and headless.

The engine lives in :mod:`napari_bioimg.core` and imports no GUI code; the napari
widgets in :mod:`napari_bioimg._widget` only translate GUI state into core configs.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
