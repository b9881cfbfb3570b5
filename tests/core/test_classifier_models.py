"""Classifier families: their kind, any crop size, eval mode, options (the common checks: test_models.py)."""

import pytest
import torch

from napari_bioimg.core import get_model, list_models
from napari_bioimg.core.errors import ConfigError
from napari_bioimg.core.models import model_entry


def test_registered_as_classifiers():
    assert {"cnn", "resnet"} <= set(list_models("classifier"))
    assert model_entry("resnet").kind == "classifier" and "unet" not in list_models("classifier")


@pytest.mark.parametrize("name", ["cnn", "resnet"])
@pytest.mark.parametrize("spatial_dims, shape", [(2, (8, 8)), (3, (3, 20, 17))])
def test_tiny_and_flat_crops(name, spatial_dims, shape):
    """Crops smaller than the network's pooling (every family is also run by test_models.py)."""
    model = get_model(name, spatial_dims=spatial_dims, in_channels=3, out_channels=5, depth=4, base_channels=4,
                      norm="batch")
    x = torch.randn(2, 3, *shape, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 5)
    y.logsumexp(1).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters())


def test_eval_is_deterministic_and_batch_independent():
    model = get_model("cnn", spatial_dims=2, in_channels=2, out_channels=3, base_channels=4).eval()
    x = torch.randn(4, 2, 24, 24)
    with torch.no_grad():
        assert torch.allclose(model(x)[:1], model(x[:1]), atol=1e-5)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="depth"):
        get_model("cnn", spatial_dims=2, in_channels=1, out_channels=2, depth=9)
    with pytest.raises(ConfigError, match="block"):
        get_model("cnn", spatial_dims=2, in_channels=1, out_channels=2, block="dense")
