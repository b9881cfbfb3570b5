"""Training targets made patch by patch, from what a sample holds.

A :class:`Targets` turns the annotations (or the target image, or the image itself)
under one patch into what the loss expects, in the conventions of :mod:`.patches`:
class indices ``(*patch)`` int64 with :data:`~.patches.IGNORE` for "not annotated",
or images ``(C', *patch)`` float32 with NaN for "ignore". Computing them per patch
(rather than for the whole image first) is what lets training read only the patches
it samples. A maker that looks at neighbours (instance boundaries) asks for a
``halo`` of context pixels; the patch then equals the crop of the whole-image result.

Phase 2 seam: each :class:`~..tasks.base.Task` names its maker (today
:func:`targets_for` maps the registered task names).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .patches import IGNORE


def instance_classes(labels: np.ndarray) -> np.ndarray:
    """Instance ids of one plane ``(*spatial)`` -> 0 background, 1 interior, 2 boundary (int64).

    Boundaries are the objects' inner edge pixels (``find_boundaries(mode="inner")``),
    so touching objects stay apart.
    """
    from skimage.segmentation import find_boundaries

    labels = np.asarray(labels)
    out = np.zeros(labels.shape, dtype=np.int64)
    out[labels > 0] = 1
    out[find_boundaries(labels, mode="inner") & (labels > 0)] = 2
    return out


@dataclass(frozen=True)
class Targets:
    """How a patch's target is made. Subclasses override :meth:`make`.

    Attributes
    ----------
    index
        Class indices (``True``) or float images with NaN = ignore (``False``).
    needs
        What a sample must hold to give a target: ``"labels"``, ``"target"`` or
        ``"image"`` (self-supervised: every image can be trained on).
    halo
        Context pixels :meth:`make` needs around the patch (cropped away after).
    focus
        Centre most patches on annotated pixels (labels > 0) rather than anywhere.
    sparse
        Label 0 means "not annotated": an image with no label > 0 gives no target.
    """

    index: bool = True
    needs: str = "labels"
    halo: int = 0
    focus: bool = True
    sparse: bool = False

    def make(self, labels: np.ndarray | None, image: np.ndarray, target: np.ndarray | None) -> np.ndarray:
        """``labels`` ``(*box)`` raw ids, ``image`` ``(C, *box)`` normalised (NaN where the raw
        value was not finite), ``target`` ``(C', *box)`` normalised with the image's percentiles."""
        raise NotImplementedError

    @property
    def fill(self) -> float | int:
        """The "ignore" value of this kind of target."""
        return IGNORE if self.index else np.nan


@dataclass(frozen=True)
class ClassTargets(Targets):
    """Scribbles: label ``k >= 1`` -> class index ``k - 1``; 0 (not annotated) -> ignore."""

    sparse: bool = True

    def make(self, labels, image, target):
        out = labels.astype(np.int64) - 1
        out[labels == 0] = IGNORE
        return out


@dataclass(frozen=True)
class InstanceTargets(Targets):
    """Dense instance masks -> background / interior / boundary; every pixel is a target."""

    halo: int = 1

    def make(self, labels, image, target):
        return instance_classes(labels)


@dataclass(frozen=True)
class ImageTargets(Targets):
    """The image itself (denoise, reconstruct: ``needs="image"``) or a clean target image
    (restore: ``needs="target"``) as a float target; non-finite pixels are ignored."""

    index: bool = False
    needs: str = "image"
    focus: bool = False
    channels: tuple[int, int] | None = None
    """``(start, stop)`` of the image's own channels with temporal context (``None``: all)."""

    def make(self, labels, image, target):
        source = target if self.needs == "target" else image
        if self.channels is not None:
            source = source[slice(*self.channels)]
        return np.array(source, dtype=np.float32)


def targets_for(task: str) -> Targets:
    """The target maker of a registered task (phase 2 moves this onto the tasks themselves)."""
    makers = {
        "semantic": ClassTargets(),
        "instance": InstanceTargets(),
        "denoise": ImageTargets(needs="image"),
        "reconstruct": ImageTargets(needs="image"),
        "restore": ImageTargets(needs="target", focus=False),
    }
    try:
        return makers[task]
    except KeyError:
        raise ConfigError(f"task {task!r} has no patch targets (it learns from object crops or whole frames); "
                          f"patch tasks: {', '.join(makers)}") from None
