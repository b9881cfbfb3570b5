import numpy as np
import torch

from napari_bioimg.core import get_model
from napari_bioimg.core.control import drain
from napari_bioimg.core.inference.tiling import blend_window, tile_starts, tiled_apply


def test_tile_starts_cover_everything():
    for length in (5, 64, 65, 100, 257):
        starts = tile_starts(length, 64, 16)
        covered = np.zeros(max(length, 64), bool)
        for s in starts:
            covered[s : s + 64] = True
        assert covered[:length].all()
        assert starts[-1] + 64 >= length


def test_blend_window_flat_for_single_tile():
    w = blend_window((8, 8), (True, False))
    assert np.allclose(w[:, 3], w[0, 3])
    assert w[0, 0] < w[0, 4]


def _model(spatial_dims):
    torch.manual_seed(0)
    m = get_model("unet", spatial_dims=spatial_dims, in_channels=1, out_channels=2, depth=2, base_channels=8)
    return m.eval()


def test_tiled_equals_whole_image_2d():
    model = _model(2)
    rng = np.random.default_rng(1)
    img = rng.normal(size=(1, 150, 130)).astype(np.float32)

    def fn(x):
        return torch.softmax(model(x), 1)

    whole = drain(tiled_apply(fn, img, 2, tile=(160, 160), divisor=4))
    tiled = drain(tiled_apply(fn, img, 2, tile=64, overlap=0.5, divisor=4, batch_size=3))
    assert tiled.shape == whole.shape == (2, 150, 130)
    assert np.abs(tiled - whole).mean() < 0.01
    assert np.abs(tiled - whole).max() < 0.2


def test_tiled_equals_whole_image_3d():
    model = _model(3)
    img = np.random.default_rng(2).normal(size=(1, 20, 50, 44)).astype(np.float32)

    def fn(x):
        return torch.softmax(model(x), 1)

    whole = drain(tiled_apply(fn, img, 2, tile=(24, 56, 48), divisor=4))
    tiled = drain(tiled_apply(fn, img, 2, tile=(16, 32, 32), overlap=0.5, divisor=4))
    assert tiled.shape == (2, 20, 50, 44)
    assert np.abs(tiled - whole).mean() < 0.01


def test_tiling_stops():
    img = np.zeros((1, 200, 200), np.float32)
    gen = tiled_apply(lambda x: x, img, 1, tile=32, stop=lambda: True, divisor=1)
    assert drain(gen) is None
