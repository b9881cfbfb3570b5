"""Blind-spot masking: how many pixels, what replaces them, where the loss looks."""

import numpy as np
import pytest
import torch

from napari_bioimg.core.errors import ConfigError
from napari_bioimg.core.tasks.masking import grid_span, mask_batch, masked_mse, window_offsets


def unique_values(shape, seed=0):
    """Every pixel a different value, so a copied value betrays where it came from."""
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float32))


@pytest.mark.parametrize("fraction", [0.002, 0.01, 0.02, 0.05])
def test_masked_fraction_2d(fraction):
    x = torch.zeros(4, 2, 128, 128)
    _, mask = mask_batch(x, fraction, np.random.default_rng(0))
    measured = mask.float().mean().item()
    span = grid_span(fraction, 2)
    assert measured == pytest.approx(1 / span**2, rel=0.25)  # one pixel per grid cell (border cells too)
    assert measured == pytest.approx(fraction, rel=0.5)
    # every image and channel gets its own pixels, and the same number of them
    per_image = mask.flatten(2).sum(-1)
    assert (per_image == per_image[0, 0]).all()
    assert not torch.equal(mask[0, 0], mask[1, 0]) and not torch.equal(mask[0, 0], mask[0, 1])


def test_masked_fraction_3d_and_spread():
    x = torch.zeros(2, 1, 16, 48, 48)
    _, mask = mask_batch(x, 0.02, np.random.default_rng(1))
    assert 0.01 < mask.float().mean().item() < 0.04
    # jittered grid: masked pixels are spread over the whole patch, not clumped
    zs, ys, xs = np.nonzero(mask[0, 0].numpy())
    assert zs.min() < 4 and zs.max() > 11 and ys.min() < 8 and ys.max() > 39 and xs.min() < 8 and xs.max() > 39


@pytest.mark.parametrize("replace", ["median", "random"])
@pytest.mark.parametrize("shape", [(3, 1, 40, 37), (2, 2, 9, 20, 17), (1, 1, 5, 64)])
def test_replacement_is_never_the_pixel_itself(replace, shape):
    x = unique_values(shape)
    keep = x.clone()
    masked, mask = mask_batch(x, 0.05, np.random.default_rng(2), radius=2, replace=replace)
    assert torch.equal(x, keep)  # the input is not modified
    assert mask.any()
    assert (masked[mask] != x[mask]).all()  # values are unique: equal would mean copied from itself
    assert torch.equal(masked[~mask], x[~mask])  # only masked pixels change


def test_random_replacement_comes_from_the_window():
    x = unique_values((2, 1, 32, 32))
    masked, mask = mask_batch(x, 0.05, np.random.default_rng(3), radius=2, replace="random")
    position = {float(v): i for i, v in enumerate(x.reshape(2, -1)[0].tolist())}
    for flat in np.flatnonzero(mask[0, 0].numpy()):
        y, xx = divmod(int(flat), 32)
        sy, sx = divmod(position[float(masked[0, 0, y, xx])], 32)
        assert (sy, sx) != (y, xx) and abs(sy - y) <= 2 and abs(sx - xx) <= 2


def test_median_replacement_is_the_window_median():
    x = unique_values((1, 1, 20, 20))
    masked, mask = mask_batch(x, 0.05, np.random.default_rng(4), radius=1, replace="median")
    img = x[0, 0].numpy()
    for flat in np.flatnonzero(mask[0, 0].numpy()):
        y, xx = divmod(int(flat), 20)
        if 0 < y < 19 and 0 < xx < 19:  # interior: plain 3x3 window without its centre
            window = np.delete(img[y - 1 : y + 2, xx - 1 : xx + 2].ravel(), 4)
            assert masked[0, 0, y, xx].item() == np.sort(window)[3]  # torch's median: the lower middle


def test_region_limits_masking():
    x = unique_values((1, 1, 32, 32))
    region = torch.zeros(1, 1, 32, 32, dtype=torch.bool)
    region[..., 16:, 16:] = True
    masked, mask = mask_batch(x, 0.05, np.random.default_rng(5), region=region)
    assert mask.any() and not (mask & ~region).any()
    assert torch.equal(masked[~mask], x[~mask])


def test_loss_only_at_masked_pixels():
    rng = np.random.default_rng(6)
    target = torch.randn(2, 1, 16, 16)
    _, mask = mask_batch(target, 0.05, rng)
    pred = torch.randn(2, 1, 16, 16, requires_grad=True)
    loss = masked_mse(pred, target, mask)
    expected = ((pred.detach() - target)[mask] ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert (pred.grad[~mask] == 0).all() and (pred.grad[mask] != 0).all()
    # changing the prediction anywhere else leaves the loss unchanged
    other = pred.detach().clone()
    other[~mask] += 100
    assert masked_mse(other, target, mask).item() == pytest.approx(loss.item(), rel=1e-6)


def test_loss_ignores_nan_targets_and_empty_masks():
    target = torch.randn(1, 1, 8, 8)
    mask = torch.zeros_like(target, dtype=torch.bool)
    mask[0, 0, 2, 2] = mask[0, 0, 5, 5] = True
    target[0, 0, 5, 5] = float("nan")
    pred = torch.zeros_like(target, requires_grad=True)
    loss = masked_mse(pred, target, mask)
    assert loss.item() == pytest.approx(target[0, 0, 2, 2].item() ** 2)
    loss.backward()
    assert torch.isfinite(pred.grad).all()
    empty = masked_mse(pred, target, torch.zeros_like(mask))
    assert empty.item() == 0.0 and empty.requires_grad


def test_bad_settings_are_clear():
    with pytest.raises(ConfigError, match="masked fraction"):
        mask_batch(torch.zeros(1, 1, 16, 16), 0.5, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="replacement"):
        mask_batch(torch.zeros(1, 1, 16, 16), 0.02, np.random.default_rng(0), replace="mean")
    assert len(window_offsets(2, 2)) == 24 and len(window_offsets(3, 1)) == 26
