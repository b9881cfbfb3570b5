"""The ``napari-bioimg`` command line: ``train | predict | export | evaluate | info | demo``."""

from .main import main

__all__ = ["main"]
