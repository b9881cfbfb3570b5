"""The declarations (core/settings): every setting carries its default, bounds and help, the engine checks exactly
the declared bounds, old model files' configurations still load, and constants live in one place."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from napari_bioimg.core.errors import ConfigError
from napari_bioimg.core.settings.declare import declared
from napari_bioimg.core.settings.embed import EmbedConfig
from napari_bioimg.core.settings.model import ModelOptions
from napari_bioimg.core.settings.predict import PredictConfig
from napari_bioimg.core.settings.train import TrainConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CONFIGS = (TrainConfig, PredictConfig, EmbedConfig, ModelOptions)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_is_declared_with_help(config):
    settings = declared(config)
    assert set(settings) == {f.name for f in fields(config)}
    assert all(s.help for s in settings.values())


def _edges(bound):
    """(value, accepted) pairs at and just beyond each declared end."""
    tiny = 1 if bound.whole else 1e-9 * max(1.0, abs(bound.high or 1))
    out = []
    if bound.low is not None:
        out += [(bound.low, not bound.low_open), (bound.low - tiny, False)]
    if bound.high is not None:
        out += [(bound.high, not bound.high_open), (bound.high + tiny, False)]
    return out


@pytest.mark.parametrize("config", (TrainConfig, EmbedConfig, PredictConfig), ids=lambda c: c.__name__)
def test_validate_checks_exactly_the_declared_bounds(config):
    for name, setting in declared(config).items():
        if setting.bound is None:
            continue
        for value, accepted in _edges(setting.bound):
            value = int(value) if setting.bound.whole else value
            candidate = config(**{name: value})
            if accepted:
                candidate.validate()
            else:
                with pytest.raises(ConfigError) as err:
                    candidate.validate()
                assert err.value.field == name, (name, value)
        with pytest.raises(ConfigError):
            config(**{name: float("nan")}).validate()


def test_model_options_are_checked_by_the_training_config():
    with pytest.raises(ConfigError) as err:
        TrainConfig(model_config={"depth": 0}).validate()
    assert err.value.field == "depth" and "at least 1" in str(err.value)
    with pytest.raises(ConfigError) as err:
        TrainConfig(model_config={"norm": "layer"}).validate()
    assert err.value.field == "norm"
    TrainConfig(model_config={"depth": 2, "base_channels": 8, "pool": "blur"}).validate()  # others pass through


def test_a_version_1_model_files_training_config_still_loads():
    from napari_bioimg.core.formats.checkpoint import ModelCard, load_checkpoint

    saved = ModelCard.of(load_checkpoint(FIXTURES / "model_v1.pt")).train_config
    config = TrainConfig.from_dict(saved).validate()
    assert config.task == "instance" and TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("option, value", [("tile", 0), ("overlap", 1.0), ("overlap", -0.1), ("batch_size", 0),
                                           ("block", (0, 64)), ("label_margin", -1)])
def test_predict_refuses_an_option_outside_its_declaration_before_reading(option, value):
    from napari_bioimg.core import predict_sync

    image = np.zeros((32, 32), np.float32)
    with pytest.raises(ConfigError) as err:
        predict_sync(FIXTURES / "model_v1.pt", image, **{option: value})
    assert err.value.field == option


def test_one_rule_decides_network_width_from_the_device():
    from napari_bioimg.core.config import suggest
    from napari_bioimg.core.settings.defaults import network_width

    for task in ("instance", "semantic", "classify", "denoise", "restore"):
        for device in ("cpu", "cuda", "mps"):
            width = suggest(task, spatial_dims=2, device=device).model_config.get("base_channels")
            assert width == network_width(device), (task, device)
    assert network_width("cuda:1") > network_width("cpu") == network_width("mps")


def test_the_declarations_load_without_torch():
    code = ("import sys, napari_bioimg.core.settings.train, napari_bioimg.core.settings.predict, "
            "napari_bioimg.cli.parser; bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy')]; "
            "print(bad); assert not bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_engines_public_names_import_when_used():
    import napari_bioimg.core as core

    assert sorted(core.__all__) == sorted(core._EXPORTS)
    for name in core.__all__:
        assert getattr(core, name) is not None
