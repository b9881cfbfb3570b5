"""Averaged recent weights (an exponential moving average) for live previews and the live result.

The weights of a network trained with a constant learning rate on a changing set of
strokes swing from step to step; their running average predicts more steadily and
is usually at least as good. The average restarts its warm-up whenever the
network's output grows (a new class): the new output's average must not lag behind
for long.
"""

from __future__ import annotations

import torch
from torch import nn


class WeightAverage:
    """An exponential moving average of a model's parameters and floating-point buffers.

    Parameters
    ----------
    decay
        Weight of the old average at each update once warmed up (0.95: about the last
        20 steps count).
    warm
        The decay used is ``min(decay, (1 + n) / (warm + n))`` after ``n`` updates since
        the last (re)start: the first updates follow the weights closely.
    """

    def __init__(self, model: nn.Module, decay: float = 0.95, warm: float = 10.0):
        self.decay, self.warm = float(decay), float(warm)
        self.updates = 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights into the average."""
        d = min(self.decay, (1.0 + self.updates) / (self.warm + self.updates))
        self.updates += 1
        with torch.no_grad():
            for k, v in model.state_dict().items():
                avg = self.state.get(k)
                if avg is None or avg.shape != v.shape or not v.dtype.is_floating_point:
                    self.state[k] = v.detach().clone()
                else:
                    avg.mul_(d).add_(v.detach(), alpha=1.0 - d)

    def regrow(self, model: nn.Module, keep: list[tuple[int, int]], names: tuple[str, ...]) -> None:
        """The output layer ``names`` (weight, bias keys) was rebuilt; row ``j`` of the new one is row ``i`` of the
        old one for each ``(j, i)`` in ``keep``, other rows are new: the average restarts its warm-up."""
        current = model.state_dict()
        with torch.no_grad():
            for key in names:
                if key not in current:
                    continue
                old, fresh = self.state.get(key), current[key].detach().clone()
                if old is not None:
                    for j, i in keep:
                        fresh[j] = old[i]
                self.state[key] = fresh
        self.updates = 0

    def averaged(self) -> dict:
        """A copy of the averaged state (a ``state_dict``)."""
        return {k: v.detach().clone() for k, v in self.state.items()}

    def swap_into(self, model: nn.Module) -> dict:
        """Load the average into ``model``; returns the weights it had (to load back)."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state)
        return own
