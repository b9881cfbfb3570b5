"""How a setting is declared: a dataclass field that carries its bounds, choices and help.

A configuration (:class:`~.train.TrainConfig`, :class:`~.predict.PredictConfig`, ...) is a dataclass whose
fields are made with :func:`setting`: the annotation is the type, ``default`` the default, and the field's
metadata a :class:`Setting` (help, :class:`Bound`, choices, what ``None`` means). :func:`check` validates an
instance against its declarations; front ends read :func:`declared` to build flags and controls.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from ..errors import ConfigError
from .defaults import shown


def number(x: float) -> str:
    """A bound as people write it: ``4096``, ``0.9``, ``1e-06``."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


@dataclass(frozen=True)
class Bound:
    """The range of a numeric setting, and a hint that says how to pick a good value."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    """``low`` itself is refused (the value must be greater)."""
    high_open: bool = False
    whole: bool = False
    """Whole numbers only."""
    hint: str = ""

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (the sentence after the field's name), or ``None``."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
            return f"must be a number, got {value!r}"
        if self.whole and value != int(value):
            return f"must be a whole number, got {value}"
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            what = f"greater than {number(self.low)}" if self.low_open else f"at least {number(self.low)}"
        elif self.high is not None and (value >= self.high if self.high_open else value > self.high):
            what = f"less than {number(self.high)}" if self.high_open else f"at most {number(self.high)}"
        else:
            return None
        return f"must be {what}, got {value:g}" + (f"; {self.hint}" if self.hint else "")

    def describe(self) -> str:
        """The range in words: ``more than 0, at most 604800``; ``whole, at least 1``."""
        parts = ["whole"] if self.whole else []
        if self.low is not None:
            parts.append(f"{'more than' if self.low_open else 'at least'} {number(self.low)}")
        if self.high is not None:
            parts.append(f"{'less than' if self.high_open else 'at most'} {number(self.high)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Setting:
    """What a field declares besides its type and default."""

    help: str
    bound: Bound | None = None
    choices: tuple | None = None
    unset: str = ""
    """What ``None`` means (``"the task's"``, ``"none"``, ...): shown as the default when the default is ``None``."""
    per_axis: bool = False
    """One value, or one per spatial axis (patch, tile, block sizes): each is checked against ``bound``."""

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (``None`` passes: it means :attr:`unset`), or ``None``."""
        if value is None:
            return None
        if self.choices is not None:
            key = value.lower() if isinstance(value, str) else value
            if key not in self.choices:
                return f"must be one of {', '.join(map(str, self.choices))}, got {value!r}"
            return None
        if self.bound is None:
            return None
        if self.per_axis:
            sizes = (value,) if isinstance(value, numbers.Real) else tuple(value)
            bad = [self.bound.problem(s) for s in sizes]
            if not sizes or any(bad):
                b = self.bound
                return (f"values must be whole numbers between {number(b.low)} and {number(b.high)}, got {value}"
                        + (f"; {b.hint}" if b.hint else ""))
            return None
        return self.bound.problem(value)


def setting(default: Any = None, help: str = "", *, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False, whole: bool = False, hint: str = "",
            choices: tuple | None = None, unset: str = "", per_axis: bool = False, factory: Any = None) -> Any:
    """A dataclass field declaring one setting (see :class:`Setting`; ``factory`` for mutable defaults)."""
    bound = None
    if low is not None or high is not None or whole:
        bound = Bound(low, high, low_open, high_open, whole, hint)
    meta = {"setting": Setting(help, bound, choices, unset, per_axis)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def declared(config: Any) -> dict[str, Setting]:
    """The declared settings of a configuration class or instance, by field name, in field order."""
    return {f.name: f.metadata["setting"] for f in fields(config) if "setting" in f.metadata}


def default(config: Any, name: str) -> Any:
    """The declared default of field ``name`` of a configuration class or instance."""
    f = next(f for f in fields(config) if f.name == name)
    return f.default_factory() if f.default is MISSING else f.default


def described_default(config: Any, name: str) -> str:
    """The default in words: the value, or what ``None`` means."""
    value = default(config, name)
    return declared(config)[name].unset or "unset" if value is None else shown(value)


def check(config: Any, names: Any = None) -> None:
    """Raise :class:`ConfigError` (``field`` = the setting) for the first declared value that is refused."""
    settings = declared(config)
    for name in names or settings:
        problem = settings[name].problem(getattr(config, name))
        if problem:
            raise ConfigError(problem, field=name)
