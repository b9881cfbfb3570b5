"""Growing a network's output when a new class appears mid-session, keeping what it learned."""

from __future__ import annotations

import torch
from torch import nn


def output_layer(model: nn.Module) -> nn.Module:
    """The layer that produces the class scores (``model.head``: a 1x1 conv or a linear layer)."""
    head = getattr(model, "head", None)
    if not isinstance(head, (nn.Conv2d, nn.Conv3d, nn.Linear)):
        raise TypeError(f"{type(model).__name__} has no conv/linear 'head' to grow")
    return head


def remap_classes(model: nn.Module, old: list, new: list) -> bool:
    """Make ``model``'s outputs follow the class list ``new`` (it had ``old``), by name.

    A class in both keeps its learned weights (whatever its position); a new class
    starts as in :func:`grow_classes`. Returns whether the output layer changed.
    """
    if list(old) == list(new):
        return False
    head = output_layer(model)
    keep = [(j, old.index(name)) for j, name in enumerate(new) if name in old]
    fresh = _like(head, len(new))
    with torch.no_grad():
        fresh.weight.mul_(0.1)
        for j, i in keep:
            fresh.weight[j] = head.weight[i]
            if head.bias is not None:
                fresh.bias[j] = head.bias[i]
        if head.bias is not None:
            kept = [j for j, _ in keep]
            for j in range(len(new)):
                if j not in kept:
                    fresh.bias[j] = head.bias.min() - 2.0
    model.head = fresh
    return True


def _like(head: nn.Module, n_out: int) -> nn.Module:
    """A new output layer like ``head`` with ``n_out`` outputs, on its device."""
    if isinstance(head, nn.Linear):
        new = nn.Linear(head.in_features, n_out, bias=head.bias is not None)
    else:
        new = type(head)(head.in_channels, n_out, head.kernel_size, stride=head.stride, padding=head.padding,
                         bias=head.bias is not None)
    return new.to(head.weight.device, head.weight.dtype)


def grow_classes(model: nn.Module, n_out: int) -> bool:
    """Give ``model`` ``n_out`` output channels; the existing ones keep their weights exactly.

    New channels start with small random weights and a bias well below the existing
    classes', so the prediction does not change until they are trained. Returns
    whether the model changed (an optimiser must then be told about the new
    parameters).
    """
    head = output_layer(model)
    old = head.out_channels if not isinstance(head, nn.Linear) else head.out_features
    if n_out <= old:
        return False
    new = _like(head, n_out)
    with torch.no_grad():
        new.weight.mul_(0.1)
        new.weight[:old] = head.weight
        if head.bias is not None:
            new.bias[:old] = head.bias
            new.bias[old:] = head.bias.min() - 2.0
    model.head = new
    return True
