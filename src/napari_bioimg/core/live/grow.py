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
    if isinstance(head, nn.Linear):
        new = nn.Linear(head.in_features, n_out, bias=head.bias is not None)
    else:
        cls = type(head)
        new = cls(head.in_channels, n_out, head.kernel_size, stride=head.stride, padding=head.padding,
                  bias=head.bias is not None)
    new = new.to(head.weight.device, head.weight.dtype)
    with torch.no_grad():
        new.weight.mul_(0.1)
        new.weight[:old] = head.weight
        if head.bias is not None:
            new.bias[:old] = head.bias
            new.bias[old:] = head.bias.min() - 2.0
    model.head = new
    return True
