"""Model registry: ``register_model``, ``list_models`` and ``get_model``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    kind: str
    """``"dense"`` (per-pixel output, same size as the input) or ``"classifier"``."""
    description: str
    spatial_dims: tuple[int, ...] = (2, 3)
    """The model dimensionalities the family builds (``spatial_dims=`` of :func:`get_model`)."""


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, kind: str = "dense", description: str = "", spatial_dims: tuple[int, ...] = (2, 3)):
    """Class or function decorator adding a model family to the registry.

    Every registered family is tested by ``tests/core/test_models.py`` (forward and
    backward at odd sizes in each of its ``spatial_dims``, state-dict round trip).
    """

    def wrap(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, builder, kind, description or (builder.__doc__ or "").strip().split("\n")[0],
                                     tuple(spatial_dims))
        return builder

    return wrap


def list_models(kind: str | None = None) -> list[str]:
    """Registered model names, optionally only those of one kind."""
    return sorted(n for n, e in _REGISTRY.items() if kind is None or e.kind == kind)


def model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def get_model(name: str, **config) -> nn.Module:
    """Build a model by name.

    Parameters
    ----------
    name
        A name from :func:`list_models`.
    **config
        ``spatial_dims``, ``in_channels``, ``out_channels`` and the family's own options.
    """
    entry = model_entry(name)
    try:
        return entry.builder(**config)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad option for model {name!r}: {err}") from None
