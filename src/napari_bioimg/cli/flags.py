"""Flags built from the engine's declarations (:mod:`napari_bioimg.core.settings`), and one-line parse errors.

A flag that sets an engine setting is declared in ONE place, the engine's
configuration; the command line adds it with :func:`add_setting`::

    add_setting(parser, "--lr", TrainConfig, "learning_rate")

which takes the type, the bounds (checked as the value is parsed), the choices and
the help from the declaration, writes the default and the range into the help, and
records the flag in :data:`FLAGS` so the engine's errors about the setting name it.
The argparse default stays ``None``: a command passes only what the user gave.
Importing this module does not load torch (the declarations are light).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Any

from ..core.settings.declare import declared, described_default

#: Engine settings (configuration fields, model options) -> the flag that sets them: an engine error about a
#: setting names the flag (``--batch-size must be at least 1, ...``). :func:`add_setting` fills it in.
FLAGS: dict[str, str] = {"out": "--out"}


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``napari-bioimg: error: --lr must be ...``), exit code 2."""

    def error(self, message: str) -> None:  # noqa: D401 (argparse's name)
        message = re.sub(r"^argument ([^:/]+)(?:/[^:]+)?: ", r"\1 ", message)
        print(f"napari-bioimg: error: {message} (see: {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def parse_value(text: str, whole: bool) -> float | int:
    """``text`` as a number: a whole number for ``whole`` settings (``1e3`` is 1000); raises ``ValueError``."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"must be a number, got {text!r}") from None
    if math.isnan(value):
        raise ValueError(f"must be a number, got {text!r}")
    if whole:
        if not value.is_integer():
            raise ValueError(f"must be a whole number, got {text!r}")
        return int(value)
    return value


def _parser_of(setting, whole: bool):
    """The ``type=`` of a numeric flag: parse, then the declaration's own check (one message per problem)."""

    def parse(text: str):
        try:
            value = parse_value(text, whole)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        problem = setting.bound.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = "int" if whole else "float"
    parse.setting = setting  # read by the tests: every numeric flag is declared
    return parse


def add_setting(parser, flag: str, config: Any, name: str, *, help: str | None = None, **kwargs: Any):
    """Add ``flag`` for setting ``name`` of ``config`` (a configuration class), built from its declaration.

    ``help`` replaces the declared help (the default and the range are still added); other keywords go to
    ``add_argument`` (``metavar``, ``dest``...). Boolean settings become ``store_true`` switches.
    """
    setting = declared(config)[name]
    default = described_default(config, name)
    text = help or setting.help
    options: dict[str, Any] = {"default": None}
    if isinstance(getattr(config, name, None), bool):
        options = {"action": "store_true"}
    elif setting.choices is not None:
        kind = type(setting.choices[0])
        options.update(type=kind, choices=setting.choices)
        text += f" (default: {default})"
    elif setting.bound is not None:
        options["type"] = _parser_of(setting, setting.bound.whole)
        if setting.per_axis:
            options["nargs"] = "+"
        text += f" (default: {default}; {setting.bound.describe()})"
    else:
        text += f" (default: {default})"
    options.update(kwargs)
    FLAGS.setdefault(name, flag)
    return parser.add_argument(flag, help=text.replace("%", "%%"), **options)


def config_from(args: argparse.Namespace, config: Any) -> Any:
    """The configuration (an instance of the class ``config``) the flags given ask for.

    Every declared setting that has a flag (added with :func:`add_setting`) and was
    given is set; the others keep their declared defaults. A per-axis setting given as
    one value is that value, as several a tuple (``--tile 32 128 128``). Not checked
    here: the engine checks a configuration once, where it is used.
    """
    given = {}
    for name, setting in declared(config).items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if setting.per_axis and isinstance(value, list):
            value = value[0] if len(value) == 1 else tuple(value)
        given[name] = value
    return config(**given)
