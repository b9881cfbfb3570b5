import pytest
import torch

from napari_bioimg.core import get_model, list_models
from napari_bioimg.core.errors import ConfigError


def test_registry_lists_and_rejects_unknown():
    assert "unet" in list_models()
    with pytest.raises(ConfigError, match="available: .*unet"):
        get_model("no-such-net")


@pytest.mark.parametrize("spatial_dims, shape", [(2, (37, 53)), (2, (64, 64)), (3, (10, 21, 19))])
@pytest.mark.parametrize("norm", ["batch", "group"])
def test_unet_forward_backward_odd_sizes(spatial_dims, shape, norm):
    model = get_model("unet", spatial_dims=spatial_dims, in_channels=2, out_channels=3, depth=2,
                      base_channels=8, norm=norm)
    x = torch.randn(2, 2, *shape, requires_grad=True)
    y = model(x)
    assert y.shape == (2, 3, *shape)
    y.mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_unet_n2v2_options_and_residual():
    model = get_model("unet", spatial_dims=2, in_channels=1, out_channels=1, depth=2, base_channels=8,
                      pool="blur", top_skip=False, residual=True)
    y = model(torch.randn(1, 1, 40, 40))
    assert y.shape == (1, 1, 40, 40)


def test_bad_model_option_is_clear():
    with pytest.raises(ConfigError, match="bad option"):
        get_model("unet", spatial_dims=2, in_channels=1, out_channels=1, nonsense=3)
