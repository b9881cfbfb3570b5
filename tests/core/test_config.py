"""TrainConfig: one place for every default (None = the task's) and every check (errors name the field)."""

import numpy as np
import pytest

from napari_bioimg.core import TrainConfig, list_tasks, train_sync
from napari_bioimg.core.config import BOUNDS, TASK_DECIDED, resolve, resume_config, suggest
from napari_bioimg.core.errors import ConfigError
from napari_bioimg.core.formats.checkpoint import ModelCard


@pytest.mark.parametrize("task", list_tasks())
@pytest.mark.parametrize("spatial_shape", [(64, 64), (16, 64, 64)])
def test_the_tasks_defaults_are_what_a_front_end_is_shown(task, spatial_shape):
    resolved = resolve(TrainConfig(task=task), spatial_shape=spatial_shape, device="cpu")
    shown = suggest(task, spatial_dims=len(spatial_shape), device="cpu")
    for name in TASK_DECIDED + ("spatial_dims",):
        assert getattr(resolved, name) == getattr(shown, name), name
    assert {k: resolved.model_config[k] for k in shown.model_config} == shown.model_config
    assert resolve(resolved, spatial_shape=spatial_shape) == resolved  # resolving twice changes nothing


def test_given_values_win_and_the_model_file_stores_the_values_used():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(48, 48)).astype(np.float32)
    config = TrainConfig(task="denoise", batch_size=2, epochs=1, steps_per_epoch=1, time_limit=None,
                         model_config={"base_channels": 4}, preview_every=0)
    assert config.learning_rate is None and config.patch_size is None and config.model is None
    card = ModelCard.of(train_sync(image, None, config).checkpoint)
    assert card.train_config["batch_size"] == 2  # given
    assert card.train_config["learning_rate"] == 4e-3 and card.train_config["patch_size"] == 64  # denoise's
    assert card.model == card.train_config["model"] == "unet" and card.model_config["base_channels"] == 4
    assert card.train_config["model_config"] == card.model_config


@pytest.mark.parametrize("field, value, says", [
    ("batch_size", 0, "batch_size must be at least 1, got 0; 8 suits most images"),
    ("learning_rate", 0, "learning_rate must be greater than 0, got 0; try 1e-3"),
    ("time_limit", -5, "time_limit must be greater than 0"),
    ("epochs", 2.5, "epochs must be a whole number, got 2.5"),
    ("val_fraction", 0.95, "val_fraction must be less than 0.9"),
    ("batch_size", "8", "batch_size must be a number, got '8'"),
])
def test_a_refused_value_names_its_field_and_how_to_fix_it(field, value, says):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: value}).validate()
    err = info.value
    assert err.field == field and str(err).startswith(says)
    assert err.named("--flag").startswith("--flag must be")


def test_every_bound_is_checked():
    for field in BOUNDS:
        with pytest.raises(ConfigError) as info:
            TrainConfig(**{field: -1}).validate()
        assert info.value.field == field


def test_other_checks_name_their_field():
    for kwargs, field in (({"optimizer": "lbfgs"}, "optimizer"), ({"device": "tpu"}, "device"),
                          ({"spatial_dims": 4}, "spatial_dims"), ({"patch_size": (4, 64)}, "patch_size"),
                          ({"percentiles": (50, 10)}, "percentiles")):
        with pytest.raises(ConfigError) as info:
            TrainConfig(**kwargs).validate()
        assert info.value.field == field
    with pytest.raises(ConfigError) as info:
        resolve(TrainConfig(task="classify", model="unet"), spatial_shape=(64, 64))
    assert info.value.field == "model" and "cnn" in str(info.value)


def test_a_resumed_run_keeps_its_settings_but_not_its_machine():
    saved = TrainConfig(task="semantic", batch_size=3, device="cuda", num_threads=7).to_dict()
    config = resume_config(saved, epochs=5)
    assert (config.task, config.batch_size, config.epochs) == ("semantic", 3, 5)
    assert config.device == "auto" and config.num_threads is None
    assert resume_config(saved, device="cpu").device == "cpu"
    assert TrainConfig.from_dict(config.to_dict()) == config
