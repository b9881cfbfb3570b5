"""Every numeric flag of every command refuses bad numbers with one line naming it, and every flag that sets an
engine setting agrees with the setting's declaration (default, bounds, choices)."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys

import pytest

from napari_bioimg.cli import main
from napari_bioimg.cli.flags import FLAGS
from napari_bioimg.cli.parser import build_parser
from napari_bioimg.core.settings.declare import declared, described_default


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _numeric(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The flags that take numbers: a declared parser, or a plain ``int`` / ``float`` (not declared: a bug)."""
    return [a for a in parser._actions if a.option_strings and a.choices is None
            and (hasattr(a.type, "setting") or a.type in (int, float))]


NUMERIC = [(name, action.option_strings[0]) for name, parser in _commands().items() for action in _numeric(parser)]
BAD = ("-5", "0", "nan", "abc", "1e12", "inf")


def test_the_sweep_covers_every_command_with_numbers():
    commands = {name for name, _ in NUMERIC}
    assert {"train", "predict", "embed", "demo"} <= commands
    assert len(NUMERIC) >= 30  # enumerated from the parser, not listed by hand


@pytest.mark.parametrize("command, flag", NUMERIC)
def test_every_numeric_flag_is_declared(command, flag):
    """A numeric flag gets its type and bounds from a declaration (``flags.add_setting``), never ``type=int``."""
    action = next(a for a in _commands()[command]._actions if flag in a.option_strings)
    assert hasattr(action.type, "setting"), f"{command} {flag}: declare it and add it with add_setting"


def _argv(command: str, parser: argparse.ArgumentParser, tmp_path) -> list[str]:
    """The command with its required flags, pointing at (absent) files under ``tmp_path``."""
    argv = [command]
    for action in parser._actions:
        if action.required and action.option_strings:
            argv += [action.option_strings[0], str(tmp_path / f"{action.dest}.tif")]
    return argv


@pytest.mark.parametrize("command, flag", NUMERIC)
def test_bad_numbers_are_refused_with_one_line_naming_the_flag(command, flag, tmp_path, capsys):
    parser = _commands()[command]
    action = next(a for a in parser._actions if flag in a.option_strings)
    setting = action.type.setting
    for value in BAD:
        if value == "0" and setting.bound.problem(0) is None:
            continue  # zero is valid here (overlap, seed, label margin...): the declaration says so
        code = main([*_argv(command, parser, tmp_path), f"{flag}={value}"])
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert code == 2, f"{command} {flag} {value}: exit {code}"
        assert len(lines) == 1 and lines[0].startswith(f"napari-bioimg: error: {flag} must"), (value, err)
        assert "Traceback" not in err
        assert not any(tmp_path.iterdir()), f"{command} {flag} {value} wrote {list(tmp_path.iterdir())}"


def test_zero_is_accepted_where_the_declaration_allows_it():
    args = build_parser().parse_args(["predict", "--model", "m.pt", "--image", "i.tif", "--out", "o.tif",
                                      "--overlap", "0", "--label-margin", "0"])
    assert (args.overlap, args.label_margin) == (0.0, 0)
    args = build_parser().parse_args(["train", "--image", "i.tif", "--out", "m.pt", "--seed", "0",
                                      "--temporal-context", "0", "--grad-clip", "0", "--val-fraction", "0"])
    assert (args.seed, args.temporal_context, args.grad_clip, args.val_fraction) == (0, 0, 0.0, 0.0)


def test_a_negative_time_limit_stops_before_training(tmp_path, blobs2d):
    """Issue 24.1, as a user types it: ``napari-bioimg train ... --time-limit -5``."""
    import tifffile

    image, labels = blobs2d
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    res = subprocess.run([sys.executable, "-m", "napari_bioimg.cli", "train", "--image", str(tmp_path / "img.tif"),
                          "--labels", str(tmp_path / "lbl.tif"), "--out", str(tmp_path / "m.pt"),
                          "--time-limit", "-5"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert "--time-limit must be greater than 0, got -5" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("command", sorted(_commands()))
def test_flags_agree_with_their_declarations(command):
    """Each flag that sets an engine setting shows the declared default and range, checks the declared bounds,
    offers the declared choices, and leaves its argparse default unset (the engine fills it in)."""
    for action in _commands()[command]._actions:
        setting = getattr(action.type, "setting", None)
        if setting is None:
            continue
        config, name = _declaration(setting)
        assert FLAGS[name] in action.option_strings  # the engine's errors about the setting name this flag
        if command != "demo":
            assert action.default is None, f"{command} {action.option_strings[0]} re-defaults {name}"
        assert f"default: {described_default(config, name)}" in action.help.replace("%%", "%")
        assert setting.bound.describe() in action.help
        b = setting.bound
        for edge, inside in ((b.low, not b.low_open), (b.high, not b.high_open)):
            if edge is None or math.isinf(edge):
                continue
            text = str(int(edge)) if b.whole else repr(float(edge))
            if inside:
                assert action.type(text) == edge
            else:
                with pytest.raises(argparse.ArgumentTypeError):
                    action.type(text)


def test_choice_flags_offer_the_declared_choices():
    from napari_bioimg.core.settings.embed import EmbedConfig
    from napari_bioimg.core.settings.model import ModelOptions
    from napari_bioimg.core.settings.train import TrainConfig

    commands = _commands()
    expected = {("train", "--optimizer"): (TrainConfig, "optimizer"), ("train", "--dims"): (TrainConfig,
                                                                                          "spatial_dims"),
                ("train", "--norm"): (ModelOptions, "norm"), ("embed", "--reduction"): (EmbedConfig, "reduction"),
                ("embed", "--dims"): (EmbedConfig, "spatial_dims")}
    for (command, flag), (config, name) in expected.items():
        action = next(a for a in commands[command]._actions if flag in a.option_strings)
        assert tuple(action.choices) == declared(config)[name].choices
        assert action.default is None


def _declaration(setting):
    from napari_bioimg.core.settings.embed import EmbedConfig
    from napari_bioimg.core.settings.launch import LaunchConfig
    from napari_bioimg.core.settings.model import ModelOptions
    from napari_bioimg.core.settings.predict import PredictConfig
    from napari_bioimg.core.settings.train import TrainConfig

    for config in (TrainConfig, PredictConfig, ModelOptions, EmbedConfig, LaunchConfig):
        for name, s in declared(config).items():
            if s is setting:
                return config, name
    raise AssertionError(f"{setting} is declared nowhere")
