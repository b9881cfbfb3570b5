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


@pytest.mark.parametrize("spatial_dims, shape", [(2, (37, 53)), (3, (10, 21, 19))])
def test_autoencoder_forward_backward_encode(spatial_dims, shape):
    model = get_model("autoencoder", spatial_dims=spatial_dims, in_channels=2, out_channels=2, depth=2,
                      base_channels=8, latent_channels=5)
    x = torch.randn(3, 2, *shape, requires_grad=True)
    y = model(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    z = model.encode(x)
    padded = [-(-s // 4) for s in shape]  # padded to a multiple of 2**depth, then halved twice
    assert z.shape == (3, 5, *padded)
    assert model.encode(x, pooled=True).shape == (3, 5)
    assert model.decode(z).shape == (3, 2, *[4 * p for p in padded])


def test_autoencoder_latent_size_is_a_bottleneck():
    small = get_model("autoencoder", spatial_dims=2, depth=3, base_channels=8, latent_channels=2, pool="blur")
    big = get_model("autoencoder", spatial_dims=2, depth=3, base_channels=8, latent_channels=64)
    x = torch.randn(1, 1, 64, 64)
    assert small.encode(x).numel() == 2 * 8 * 8 and big.encode(x).numel() == 64 * 8 * 8
    assert "autoencoder" in list_models("dense")
    with pytest.raises(ConfigError, match="bad option"):
        get_model("autoencoder", spatial_dims=2, top_skip=False)
    with pytest.raises(ValueError, match="latent_channels"):
        get_model("autoencoder", spatial_dims=2, latent_channels=0)
