"""Item tasks: the model runs on the task's own items (object crops, whole frames), one class per item.

Unlike a :class:`~.dense.DenseTask` there is no patch and no tiling: the task cuts
its items, trains a ``"classifier"`` model on them, and validates, previews and
predicts through the hooks below, which the training loop and
:func:`..inference.predict.predict` call for every :class:`ItemTask`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import torch

from .base import Problem, Task


class ItemTask(Task):
    """Base of the tasks whose model sees items (crops around objects, frames) rather than tiles.

    ``forward`` in the hooks maps a batch tensor to activated outputs, with the model
    in eval mode and no gradients.
    """

    predicts_items = True
    model_kind = "classifier"
    default_model = "cnn"
    unit = "items"
    """What the items are called to the user (``"objects"``, ``"frames"``)."""

    def pretrain_refusal(self) -> str | None:
        return "learns from object crops or whole frames"

    def export_refusal(self) -> str | None:
        return (f"{self.name} models cannot be exported yet (they classify crops around objects, not whole images); "
                "share the .pt file, which napari-bioimg predict reads")

    def validate_direct(self, problem: Problem, forward: Callable[[torch.Tensor], torch.Tensor]
                        ) -> tuple[dict[str, float], float, dict] | None:
        """Validate on the problem's held-apart items: (metrics, score, full report), or None if there are none."""
        raise NotImplementedError

    def preview_direct(self, problem: Problem, forward: Callable[[torch.Tensor], torch.Tensor], sample: int
                       ) -> np.ndarray:
        """The result for one training sample (frame/slice) with the current model."""
        raise NotImplementedError

    def predict_direct(self, loaded: Any, inp: Any, **kwargs) -> Generator[Any, None, Any]:
        """Prediction generator used by :func:`..inference.predict.predict` for this task.

        ``inp`` is the image made ready by :func:`..inference.runner.prepare` (in
        memory, normalised); ``kwargs`` are ``labels``, ``batch_size``, ``control``,
        ``amp``, ``class_image`` and ``tta``.
        """
        raise NotImplementedError
