"""Annotation edits that reach a running training session, and where they were made.

A GUI copies each edit of the user's annotation layer (the box around the painted,
erased or filled pixels and the new values in it) into an :class:`AnnotationEdit`
and puts it on the session's queue, with :class:`ViewChanged` when the user looks
elsewhere; the training worker applies them to its own copy between two steps. :class:`EditHistory` remembers where recent
edits were, so patches can be drawn there more often while older annotations are
still replayed (the model keeps what it learned from them).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AnnotationEdit:
    """The new annotation values inside ``box`` of the annotation layer (its own axes, e.g. T, Y, X).

    A GUI makes one from napari's paint event (brush, eraser, fill) or any other
    change of the layer; ``values`` has the box's shape.
    """

    box: tuple[slice, ...]
    values: np.ndarray
    time: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        shape = tuple(s.stop - s.start for s in self.box)
        if tuple(self.values.shape) != shape:
            raise ValueError(f"edit values {self.values.shape} do not fill the box {shape}")


@dataclass(frozen=True)
class ViewChanged:
    """What the user looks at, in the image's pixels without its channel axis: one index per
    frame/slice axis (a one-wide slice) and the visible part of the spatial axes."""

    box: tuple[slice, ...]


@dataclass(frozen=True)
class ClassesChanged:
    """Classification: the class annotations changed (points added, moved or re-classed).

    ``read`` turns the objects' label image into :class:`~..data.annotations.ClassAnnotations`
    (the points were read on the GUI thread; the label image is read in the worker).
    """

    read: Callable[[np.ndarray], Any]
    time: float = field(default_factory=time.monotonic)


def sample_boxes(layout, box: tuple[slice, ...]) -> list[tuple[int, tuple[slice, ...]]]:
    """A box over the image's axes without C -> ``(sample number, box over the spatial dims)`` pairs.

    ``layout`` is the engine's :class:`~..data.axes.Layout`; samples are numbered as in
    ``(N, *spatial)`` (every combination of the frame/slice axes the box spans).
    """
    axes = layout.output_axes
    if len(box) != len(axes):
        raise ValueError(f"a box over {len(box)} axes for annotations with axes {axes}")
    spatial = tuple(box[axes.index(a)] for a in layout.spatial_axes)
    ranges = [range(box[axes.index(a)].start, box[axes.index(a)].stop) for a in layout.batch_axes]
    if not ranges:
        return [(0, spatial)]
    return [(int(np.ravel_multi_index(idx, layout.batch_shape)), spatial) for idx in itertools.product(*ranges)]


@dataclass
class EditHistory:
    """Recent edit boxes with their times; picks patch centres near them.

    Parameters
    ----------
    half_life
        Seconds after which an edit counts half as much as a new one when a recent
        edit is chosen to sample near.
    recent_share
        Share of patches centred in recent edits (the rest replay all annotations).
    keep
        How many edits are remembered.
    """

    half_life: float = 20.0
    recent_share: float = 0.5
    keep: int = 64
    edits: list[tuple[int, tuple[slice, ...], float]] = field(default_factory=list)

    def add(self, sample: int, box: tuple[slice, ...], when: float | None = None) -> None:
        """Remember an edit of ``box`` (spatial dims) of sample ``sample``."""
        self.edits.append((int(sample), tuple(box), time.monotonic() if when is None else when))
        del self.edits[: -self.keep]

    def pick(self, rng: np.random.Generator, annotated: np.ndarray, now: float | None = None
             ) -> tuple[int, tuple[int, ...]] | None:
        """A ``(sample, centre)`` on an annotated pixel inside a recent edit, or ``None`` (then replay).

        ``annotated`` is the ``(N, *spatial)`` boolean mask of annotated pixels: an
        erased edit (nothing annotated left in its box) is skipped.
        """
        if not self.edits or rng.random() >= self.recent_share:
            return None
        now = time.monotonic() if now is None else now
        ages = np.array([now - t for _, _, t in self.edits])
        weights = 0.5 ** (np.maximum(ages, 0) / self.half_life)
        order = rng.choice(len(self.edits), size=len(self.edits), replace=False, p=weights / weights.sum())
        for i in order:
            sample, box, _ = self.edits[int(i)]
            inside = np.argwhere(annotated[(sample, *box)])
            if len(inside):
                offset = inside[rng.integers(len(inside))]
                return sample, tuple(int(b.start + o) for b, o in zip(box, offset))
        return None


def merge_boxes(boxes: list[tuple[slice, ...]]) -> tuple[slice, ...]:
    """The smallest box holding every box of ``boxes`` (all of the same rank)."""
    starts = np.min([[s.start for s in b] for b in boxes], axis=0)
    stops = np.max([[s.stop for s in b] for b in boxes], axis=0)
    return tuple(slice(int(a), int(b)) for a, b in zip(starts, stops))


class ClassCentres:
    """Painted pixels by class: a patch centre on a class chosen in turn, so a class of a few thin
    strokes is trained on as often as one painted in broad strokes.

    Parameters
    ----------
    labels
        ``(N, *spatial)`` painted class ids (0 = not painted).
    keep
        Pixels remembered per class at most (a random choice of them).
    """

    def __init__(self, labels: np.ndarray, rng: np.random.Generator, keep: int = 50_000):
        labels = np.asarray(labels)
        flat = labels.ravel()
        order = np.argsort(flat, kind="stable")
        values, starts = np.unique(flat[order], return_index=True)
        bounds = list(starts[1:]) + [len(flat)]
        self.coords = []
        for v, a, b in zip(values, starts, bounds):
            if v <= 0:
                continue
            idx = order[a:b]
            if len(idx) > keep:
                idx = rng.choice(idx, keep, replace=False)
            self.coords.append(np.stack(np.unravel_index(idx, labels.shape), axis=1))

    def pick(self, rng: np.random.Generator) -> tuple[int, tuple[int, ...]] | None:
        """``(sample, centre)`` on a pixel of a class chosen uniformly, ``None`` without classes."""
        if not self.coords:
            return None
        coords = self.coords[int(rng.integers(len(self.coords)))]
        c = coords[int(rng.integers(len(coords)))]
        return int(c[0]), tuple(int(v) for v in c[1:])
