"""The optimiser and its learning-rate schedule.

The schedule has no state of its own: it is a pure function of the step and the
fraction of the budget used, so a resumed run (:mod:`.resume`) restores it from
the step count and the elapsed time alone.
"""

from __future__ import annotations

import math

import torch

from ..config import TrainConfig

WARMUP_STEPS = 20


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``config`` names (a resolved config: its learning rate is set)."""
    name = config.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(params, lr=config.learning_rate, momentum=config.momentum,
                               weight_decay=config.weight_decay, nesterov=config.momentum > 0)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(params, lr=config.learning_rate, weight_decay=config.weight_decay)


def lr_factor(step: int, fraction: float) -> float:
    """Linear warm-up, then cosine decay to 5% over the budget (time or epochs)."""
    warm = min(1.0, (step + 1) / WARMUP_STEPS)
    return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, fraction))))


def set_learning_rate(optimizer: torch.optim.Optimizer, config: TrainConfig, step: int, fraction: float) -> None:
    """Apply the schedule for ``step`` (steps under the current budget) at ``fraction`` of the budget."""
    for group in optimizer.param_groups:
        group["lr"] = config.learning_rate * lr_factor(step, fraction)
