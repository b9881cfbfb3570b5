"""Model registry: ``register_model``, ``list_models``, ``get_model`` and ``model_protocol``.

Each entry declares what the code around a network needs to know beyond its
``forward`` (:class:`ModelProtocol`: the sizes it takes, the tile it prefers), as a
function of the options it is built with, so training and prediction read it from
the entry instead of probing a built network.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class ModelProtocol:
    """How a network is driven: input sizes it takes and the tile prediction prefers."""

    size_divisor: int | tuple[int, ...] = 1
    """Spatial sizes must be a multiple of this: one int, or one per spatial dim (``(z, y, x)`` when Z is
    pooled fewer times). Networks pad their input to it; patches and tiles are fitted to it."""
    preferred_tile: tuple[int, ...] | None = None
    """The prediction tile unless the caller gives one (``None``: the general default)."""


def any_size(**config: Any) -> ModelProtocol:
    """The protocol of a network that takes any input size and has no preferred tile."""
    return ModelProtocol()


def halves_depth_times(depth: int, **config: Any) -> ModelProtocol:
    """The protocol of an encoder-decoder that halves every spatial dim ``depth`` times: sizes of ``2**depth``."""
    return ModelProtocol(2**depth)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    kind: str
    """``"dense"`` (per-pixel output, same size as the input) or ``"classifier"``."""
    description: str
    spatial_dims: tuple[int, ...] = (2, 3)
    """The model dimensionalities the family builds (``spatial_dims=`` of :func:`get_model`)."""
    protocol: Callable[..., ModelProtocol] = any_size
    """The :class:`ModelProtocol` of a network built with the given options (the builder's defaults filled in)."""


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, kind: str = "dense", description: str = "", spatial_dims: tuple[int, ...] = (2, 3),
                   protocol: Callable[..., ModelProtocol] = any_size):
    """Class or function decorator adding a model family to the registry.

    ``protocol`` maps the build options (every argument of the builder, defaults
    filled in) to the family's :class:`ModelProtocol`. Every registered family is
    tested by ``tests/core/test_models.py`` (forward and backward at odd sizes in each
    of its ``spatial_dims``, state-dict round trip, the protocol against the built network).
    """

    def wrap(builder):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, builder, kind, description or (builder.__doc__ or "").strip().split("\n")[0],
                                     tuple(spatial_dims), protocol)
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


def model_protocol(name: str, **config) -> ModelProtocol:
    """The :class:`ModelProtocol` of model ``name`` built with ``config`` (as :func:`get_model` takes it).

    An option the family does not take raises the :class:`ConfigError` that :func:`get_model` would.
    """
    entry = model_entry(name)
    try:
        bound = inspect.signature(entry.builder).bind(**config)
    except TypeError as err:
        raise ConfigError(f"bad option for model {name!r}: {err}") from None
    bound.apply_defaults()
    options: dict[str, Any] = {}
    for key, value in bound.arguments.items():
        if bound.signature.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
            options.update(value)
        else:
            options[key] = value
    return entry.protocol(**options)


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
