"""The first live previews: a pixel classifier answers the first strokes at once, the network takes over.

:class:`FirstPreviews` holds one :class:`~.quick.PixelClassifier` per previewed
sample (features computed once, while the session waits for strokes) and a
:class:`~.quick.Referee` that scores each new stroke against both predictions before
anything trains on it. For scribbles on 2D images only (:func:`first_previews`
says ``None`` otherwise).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.axes import make_layout
from ..events import LivePreview
from .edits import AnnotationEdit, sample_boxes
from .quick import PixelClassifier, Referee
from .uncertainty import entropy_map, object_confidence
from .view import crop, user_box, view_box

SOURCE = "pixel classifier"


def _scribbles(task: str) -> bool:
    """Whether ``task`` (a registered name) learns from scribbles: what the pixel classifier can stand in for."""
    from ..tasks import get_task, list_tasks

    return task in list_tasks() and get_task(task).wants_scribbles


def first_previews(image: Any, config, *, axes=None, rgb=False, axes_hint=None) -> FirstPreviews | None:
    """:class:`FirstPreviews` for a scribbles task on a 2D image, else ``None``."""
    if config is None or config.temporal_context or not _scribbles(config.task):
        return None
    image = np.asarray(image)
    try:
        layout = make_layout(image.shape, axes, config.spatial_dims or 2, rgb=rgb, hint=axes_hint)
    except Exception:  # noqa: BLE001 (set_up says what is wrong with the image; this is only a speed-up)
        return None
    if layout.spatial_dims != 2:
        return None
    return FirstPreviews(image, layout, int(config.seed or 0))


class FirstPreviews:
    """Pixel-classifier previews of a live session, and whether the network predicts better yet."""

    def __init__(self, image: np.ndarray, layout, seed: int = 0):
        self.image, self.layout, self.seed = image, layout, seed
        self.classifiers: dict[int, PixelClassifier] = {}
        self.referee = Referee()
        self.in_charge = True
        self.fitted_on: dict[int, int] = {}  # sample -> edits count its classifier was fitted on
        self.network: tuple[int, tuple[slice, ...], np.ndarray] | None = None  # the last network preview

    def classifier(self, n: int) -> PixelClassifier:
        if n not in self.classifiers:
            x = self.layout.to_canonical(self.image)[n].astype(np.float32)
            lo = np.percentile(x.reshape(len(x), -1), 1.0, axis=1)
            hi = np.percentile(x.reshape(len(x), -1), 99.8, axis=1)
            scale = np.maximum(hi - lo, 1e-6)
            self.classifiers[n] = PixelClassifier((x - lo[:, None, None]) / scale[:, None, None], self.seed)
        return self.classifiers[n]

    def prepare(self, n: int = 0) -> None:
        """Compute sample ``n``'s features and warm the fitting up (while the session waits for strokes)."""
        c = self.classifier(n)
        warm = np.zeros(c.features.shape[1:], np.uint8)
        warm.flat[0], warm.flat[-1] = 1, 2
        c.fit(warm)
        c.net = None

    def score(self, edit: AnnotationEdit) -> None:
        """Score both predictions on a new edit's painted pixels, before anything trains on them."""
        boxes = sample_boxes(self.layout, edit.box)
        if len(boxes) != 1:
            return
        n, box = boxes[0]
        new = np.asarray(edit.values).reshape([b.stop - b.start for b in box])
        c = self.classifiers.get(n)
        quick = None if c is None or c.labels is None else c.labels[box]
        net = None
        if self.network is not None and self.network[0] == n:
            net = crop(self.network[2], self.network[1], box)
        self.referee.score(new, quick, net)
        if self.in_charge and self.referee.network_wins():
            self.in_charge = False

    def new_class(self) -> None:
        """A class appeared: the pixel classifier knows it at once, the network must first learn it."""
        self.in_charge = True
        self.referee.restart()

    def seen_network(self, n: int, box: tuple[slice, ...], data: np.ndarray, painted: np.ndarray | None) -> None:
        """The network's latest preview; with ``painted`` (the strokes in ``box``, when nothing is held apart)
        the network also takes over once it gets the strokes it trains on at least as right as the pixel
        classifier gets the strokes it fits on."""
        self.network = (n, box, data)
        c = self.classifiers.get(n)
        if not self.in_charge or painted is None or c is None or c.labels is None:
            return
        where = painted > 0
        if where.sum() >= self.referee.min_pixels:
            truth = painted[where]
            if np.mean(data[where] == truth) >= np.mean(c.labels[box][where] == truth):
                self.in_charge = False

    def preview(self, labels, view, default: int, step: int, edits: int) -> LivePreview | None:
        """The pixel classifier's preview of the view, refitted when the strokes changed; ``None`` while fewer
        than two classes are painted. ``labels()`` gives the strokes it may fit on, ``(N, *spatial)``."""
        n, box = view_box(self.layout, view, default)
        c = self.classifier(n)
        if self.fitted_on.get(n) != edits or c.net is None:
            if not c.fit(labels()[n]):
                return None
            self.fitted_on[n] = edits
        probs = c.full_probabilities(box, int(c.classes.max()))
        data = c.predict_labels(box)
        return LivePreview(step, user_box(self.layout, n, box), data, entropy_map(probs),
                           object_confidence(data, probs), "labels", edits, SOURCE)

    def judge(self, problem, network_accuracy: float | None) -> None:
        """Held-apart strokes (the validation regions, which neither fits on): the network takes over once its
        accuracy there is at least the pixel classifier's."""
        if not self.in_charge or network_accuracy is None or not problem.val_regions:
            return
        right = total = 0
        for r in problem.val_regions:
            c = self.classifiers.get(r.sample)
            if c is None or c.labels is None:
                return
            truth = problem.val_truth[(r.sample, *r.box)]
            painted = truth > 0
            right += int((c.labels[r.box][painted] == truth[painted]).sum())
            total += int(painted.sum())
        if total and network_accuracy >= right / total:
            self.in_charge = False

    def stale(self, n: int, edits: int) -> bool:
        return self.fitted_on.get(n) != edits
