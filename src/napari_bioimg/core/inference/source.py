"""The image of a prediction: what was given (an array, a lazy array, a path, napari layer data) and what is known
about it (axes, RGB, object size, objects), in one object.

:class:`PredictSource` is the prediction's counterpart of the training side's
:class:`~..data.sources.Source`: it decides once what kind of image it holds
(:attr:`PredictSource.kind`), and the runners open or read it once. Unlike a
training source it does not settle the axes when it is made: a prediction lays
the image out against the model (the training image's axes when they fit, the
model's dimensionality), in :func:`.runner.prepare`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from ..data.io import read_image
from ..data.zarrio import first_level, is_lazy_array, is_zarr_path, opened_image

#: Files whose size is known before reading them (opened lazily first).
LAZY_SUFFIXES = (".tif", ".tiff", ".npy")


class Kind(Enum):
    """What was given as the image."""

    ARRAY = "array"
    """A numpy array (a memory map included: it is read as numpy reads it)."""
    LAZY = "lazy"
    """Any other array-like (zarr, dask, a tifffile store): opened lazily on purpose, predicted lazily."""
    FILE = "file"
    """A path: a TIFF, PNG, NPY file or a zarr / OME-Zarr folder."""


@dataclass(frozen=True, eq=False)
class PredictSource:
    """The image to predict and what is known about it.

    Parameters
    ----------
    data
        A numpy, zarr or dask array, a napari multiscale list (its finest level is
        predicted), or a path (``.tif``, ``.png``, ``.npy``, ``.zarr``, ``.ome.zarr``).
    axes
        The image's axis letters (``"YX"``, ``"ZYX"``, ``"TYXC"``...); guessed (the
        training image's when they fit) when ``None``.
    rgb
        A trailing 3/4-long axis is colour (napari's ``rgb`` flag); a one-channel
        model then gets the image in grey.
    diameter
        The typical object diameter in pixels, or ``"auto"`` to estimate it: an
        in-memory image is zoomed to the model's object size and the result back
        (:mod:`.scale`). ``None``: the model's own scale.
    labels
        For tasks that predict per object (classification): the objects, a label
        image of the image's shape without channels.
    hint
        Axes a reader recorded (e.g. tifffile's ``"ZYX"``), used when ``axes`` is ``None``.
    """

    data: Any
    axes: str | None = None
    rgb: bool = False
    diameter: float | str | None = None
    labels: Any = None
    hint: str | None = None
    scale: list[float] | None = None
    """Pixel sizes per axis, when an OME-Zarr path gave them (set by :meth:`opened`)."""

    def __post_init__(self) -> None:
        if not isinstance(self.data, (str, os.PathLike)):
            object.__setattr__(self, "data", first_level(self.data))  # napari's multiscale list: the finest level

    @classmethod
    def of(cls, image: Any, axes: str | None = None, **about: Any) -> PredictSource:
        """``image`` as a source (a source given stays as it is, with ``axes`` and ``about`` filled in)."""
        if isinstance(image, PredictSource):
            given = {k: v for k, v in dict(axes=axes, **about).items() if v is not None}
            return replace(image, **given) if given else image
        return cls(image, axes, **about)


    @property
    def kind(self) -> Kind:
        if isinstance(self.data, (str, os.PathLike)):
            return Kind.FILE
        return Kind.ARRAY if isinstance(self.data, np.ndarray) else Kind.LAZY

    @property
    def path(self) -> Path | None:
        return Path(self.data) if self.kind is Kind.FILE else None

    @contextmanager
    def opened(self) -> Iterator[PredictSource]:
        """For a ``with`` block: this source with its pixels reachable without reading them all.

        A path is opened lazily (zarr, TIFF, NPY; the file's axes become the hint and
        an OME-Zarr's pixel sizes :attr:`scale`) and closed after the block; a lazy
        array stays as it is; anything else becomes a numpy array.
        """
        path = self.path
        if path is None:
            yield self if is_lazy_array(self.data) else replace(self, data=np.asarray(self.data))
            return
        with opened_image(path) as (array, hint, meta):
            yield replace(self, data=array, hint=self.hint or hint, scale=meta.get("scale"))

    def read(self) -> PredictSource:
        """This source with a path read whole into memory (the axes its reader recorded become the hint)."""
        if self.path is None:
            return self
        image, hint = read_image(self.path)
        return replace(self, data=image, hint=self.hint or hint)

    def in_memory(self, fits: Any) -> PredictSource:
        """This source as a numpy array (``data`` as given, first level), reading a path whole.

        ``fits(shape)`` is called with the shape of a file that can be opened without
        reading it (zarr, TIFF, NPY) and raises when reading it whole would not fit.
        """
        path = self.path
        if path is None:
            return self
        if is_zarr_path(path) or path.suffix.lower() in LAZY_SUFFIXES:
            with opened_image(path) as (array, hint, _):
                fits(tuple(array.shape))
                if is_zarr_path(path):
                    return replace(self, data=np.asarray(array[...]), hint=self.hint or hint)
        return self.read()
