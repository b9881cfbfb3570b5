"""How a live network learns: where its patches are centred, its optimiser's groups and its learning rate.

A live session has no budget to decay a learning rate over: the rate stays constant
after the warm-up (the averaged weights, :mod:`.average`, smooth what a constant
rate leaves noisy). When a new class grows the network's output, the output layer
goes on at the full rate while the rest of the network warms up again, so the new
class's first, large gradients do not derail what the other classes taught it.
"""

from __future__ import annotations

import numpy as np

from ..training.optim import WARMUP_STEPS, make_optimizer
from .edits import ClassCentres, EditHistory

#: Steps over which the rest of the network warms up again after its output grew (the new output: full rate).
GROW_WARMUP = 40
#: Share of the patches not drawn near recent edits that are centred on a painted class chosen in turn.
BALANCED = 0.8


def live_picker(history: EditHistory, labels: np.ndarray, by_class: bool, rng: np.random.Generator):
    """A patch sampler's ``picker``: near a recent edit, else (``by_class``: scribbles) on a painted class chosen
    in turn, else ``None`` (the sampler's own choice). ``labels`` are the ``(N, *spatial)`` annotations."""
    classes = ClassCentres(labels, rng) if by_class else None
    # instance masks are dense: every pixel (0 = background) is an annotation
    annotated = labels > 0 if by_class else np.ones(labels.shape, bool)

    def pick(rng):
        got = history.pick(rng, annotated)
        if got is None and classes is not None and rng.random() < BALANCED:
            got = classes.pick(rng)
        return got

    return pick


def grouped_optimizer(model, old, config):
    """An optimiser over ``model`` with its output layer (``model.head``) in a group of its own; parameters
    ``old`` had keep their state (Adam moments)."""
    head = getattr(model, "head", None)
    out = list(head.parameters()) if head is not None else []
    ids = {id(p) for p in out}
    groups = [{"params": [p for p in model.parameters() if id(p) not in ids]}]
    if out:
        groups.append({"params": out, "output": True})
    optimizer = make_optimizer(groups, config)
    for p in model.parameters():
        if p in old.state:
            optimizer.state[p] = old.state[p]
    return optimizer


def set_live_rate(optimizer, config, local_step: int, step: int, grown_at: int | None) -> None:
    """Constant after the warm-up; the body warms up again for GROW_WARMUP steps after the output grew at
    step ``grown_at`` (``None``: never)."""
    base = config.learning_rate * min(1.0, (local_step + 1) / WARMUP_STEPS)
    body = 1.0 if grown_at is None else min(1.0, 0.1 + 0.9 * (step - grown_at) / GROW_WARMUP)
    for group in optimizer.param_groups:
        group["lr"] = base * (1.0 if group.get("output") else body)
