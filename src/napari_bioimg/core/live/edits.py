"""Annotation edits that reach a running training session, and where they were made.

A GUI copies each edit of the user's annotation layer (the box around the painted,
erased or filled pixels and the new values in it) into an :class:`AnnotationEdit`
and puts it on the session's queue; the training worker applies it to its own copy
of the annotations between two steps. :class:`EditHistory` remembers where recent
edits were, so patches can be drawn there more often while older annotations are
still replayed (the model keeps what it learned from them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class AnnotationEdit:
    """The new annotation values inside ``box`` of sample ``sample``.

    ``box`` indexes the sample's spatial dims (the layout the engine trains on:
    one sample = one frame / slice / image); ``values`` has the box's shape.
    """

    sample: int
    box: tuple[slice, ...]
    values: np.ndarray
    time: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        shape = tuple(s.stop - s.start for s in self.box)
        if tuple(self.values.shape) != shape:
            raise ValueError(f"edit values {self.values.shape} do not fill the box {shape}")


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

    def add(self, edit: AnnotationEdit) -> None:
        self.edits.append((edit.sample, edit.box, edit.time))
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
