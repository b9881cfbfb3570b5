"""What the dock widget's workers run: the engine's generators, after reading layer data in the worker.

The GUI thread hands over layer data as it is: a private copy of an in-memory array
(cheap), or a lazy dask / zarr array, which is read here, off the GUI thread, so the
viewer never waits for a big image to be computed. No Qt, no napari layers here.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np


def _read(data):
    return None if data is None else np.asarray(data)


def train_job(image, annotations, config, *, classes: Callable | None = None, extra: dict | None = None,
              **kwargs) -> Generator[Any, None, Any]:
    """:func:`~.core.train.train` on layer data read in the worker.

    ``classes`` (from :func:`._classify.class_request`) turns the objects' label image
    into class annotations once it has been read.
    """
    from ..core.training.loop import train

    annotations = _read(annotations)
    extra = {name: _read(value) for name, value in (extra or {}).items()}
    if classes is not None:
        extra["classes"] = classes(annotations)
    return (yield from train(_read(image), annotations, config, extra=extra or None, **kwargs))
