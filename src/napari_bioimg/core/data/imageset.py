"""What validation splits and batch samplers read of a set of images: :class:`ImageSet`.

:class:`~.dataset.DataSet` is one. Holding out (:mod:`.holdout`) and sampling
(:mod:`.sampling`) are built on a set of images, and a set offers them as methods
(``DataSet.split``, ``DataSet.sampler``); naming this protocol rather than the class keeps
the three modules free of an import cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from .axes import Layout
    from .labelstats import LabelStats


class ImageSet(Protocol):
    """Images of different sizes and their annotations, read a box at a time."""

    samples: Sequence[Any]
    """The images (:class:`~.dataset.Sample`): name, image source, annotations, split."""
    layouts: list[Layout]
    """Each image's axes in the engine's terms."""
    spatial_dims: int
    """2 or 3, the same for every image."""

    def n_planes(self, i: int) -> int: ...

    def ranges(self, i: int) -> tuple[list[float], list[float]]: ...

    def read_image(self, i: int, plane: int, box: tuple[slice, ...], *, keep_nan: bool = False) -> np.ndarray: ...

    def read_labels(self, i: int, plane: int, box: tuple[slice, ...]) -> np.ndarray: ...

    def read_target(self, i: int, plane: int, box: tuple[slice, ...]) -> np.ndarray: ...

    def label_stats(self, i: int) -> LabelStats | None: ...

    def annotated_pixels(self, i: int) -> int: ...
