"""Model families: every registered family through one tester, then each family's own options."""

import pytest
import torch

from napari_bioimg.core import get_model, list_models
from napari_bioimg.core.errors import ConfigError
from napari_bioimg.core.models import model_entry


def test_registry_lists_and_rejects_unknown():
    assert "unet" in list_models()
    with pytest.raises(ConfigError, match="available: .*unet"):
        get_model("no-such-net")


ODD = {2: (37, 53), 3: (10, 21, 19)}
IN = 3  # input channels: also a window of three frames for the temporal families
FAMILIES = [(name, dims) for name in list_models() for dims in (2, 3)]


def _build(name: str, spatial_dims: int, seed: int = 0):
    torch.manual_seed(seed)
    return get_model(name, spatial_dims=spatial_dims, in_channels=IN, out_channels=3)


@pytest.mark.parametrize("name, spatial_dims", FAMILIES)
def test_every_family_forward_backward_at_odd_sizes(name, spatial_dims):
    """Each registered family, with its default options: output shape, finite gradients everywhere."""
    entry = model_entry(name)
    if spatial_dims not in entry.spatial_dims:
        pytest.skip(f"{name} builds {entry.spatial_dims}D models only")
    model = _build(name, spatial_dims)
    shape = ODD[spatial_dims]
    x = torch.randn(2, IN, *shape, requires_grad=True)
    y = model(x)
    assert y.shape == ((2, 3, *shape) if entry.kind == "dense" else (2, 3))
    y.float().square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name, spatial_dims", FAMILIES)
def test_every_family_state_dict_round_trip(name, spatial_dims):
    """Weights saved from one instance give another the same outputs (what a model file relies on)."""
    if spatial_dims not in model_entry(name).spatial_dims:
        pytest.skip(f"{name} builds {model_entry(name).spatial_dims}D models only")
    a, b = _build(name, spatial_dims, seed=0).eval(), _build(name, spatial_dims, seed=1).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, IN, *ODD[spatial_dims])
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))


@pytest.mark.parametrize("norm", ["batch", "group", "instance", "none"])
def test_unet_norms(norm):
    model = get_model("unet", spatial_dims=2, in_channels=2, out_channels=3, depth=2, base_channels=8, norm=norm)
    assert model(torch.randn(2, 2, 37, 53)).shape == (2, 3, 37, 53)


def test_unet_n2v2_options_and_residual():
    model = get_model("unet", spatial_dims=2, in_channels=1, out_channels=1, depth=2, base_channels=8,
                      pool="blur", top_skip=False, residual=True)
    y = model(torch.randn(1, 1, 40, 40))
    assert y.shape == (1, 1, 40, 40)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_unet_resize_upsampling_draws_no_grid(spatial_dims):
    """Upsampling by interpolation: an even input gives an even output away from the borders.

    A transposed convolution stamps its 2x2 kernel on every block instead, a pattern of period 2 and 4 px
    (the faint grid once seen in denoised nuclei), whatever the weights.
    """
    torch.manual_seed(0)
    x = torch.ones((1, 1) + (32,) * spatial_dims)
    inner = (slice(None), slice(None)) + (slice(12, 20),) * spatial_dims
    spread = {}
    for up in ("deconv", "resize"):
        net = get_model("unet", spatial_dims=spatial_dims, depth=2, base_channels=8, upsample=up).eval()
        with torch.no_grad():
            y = net(x)[inner]
        spread[up] = float(y.std() / y.abs().mean())
    assert spread["resize"] < 1e-4 and spread["deconv"] > 100 * spread["resize"], spread
    with pytest.raises((ValueError, ConfigError), match="upsample"):
        get_model("unet", spatial_dims=2, upsample="pixelshuffle")


def test_bad_model_option_is_clear():
    with pytest.raises(ConfigError, match="bad option"):
        get_model("unet", spatial_dims=2, in_channels=1, out_channels=1, nonsense=3)


@pytest.mark.parametrize("spatial_dims, shape", [(2, (37, 53)), (3, (10, 21, 19))])
def test_autoencoder_encode_and_decode(spatial_dims, shape):
    model = get_model("autoencoder", spatial_dims=spatial_dims, in_channels=2, out_channels=2, depth=2,
                      base_channels=8, latent_channels=5)
    x = torch.randn(3, 2, *shape)
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
