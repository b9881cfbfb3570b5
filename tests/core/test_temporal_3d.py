"""Time-lapse with neighbouring frames as channels, and 3D U-Nets for anisotropic stacks."""

import numpy as np
import pytest
import torch

from napari_bioimg.core import (
    InputError,
    PredictConfig,
    PredictSource,
    TrainConfig,
    get_model,
    predict_sync,
    train_sync,
)
from napari_bioimg.core.config import auto_z_levels
from napari_bioimg.core.control import drain
from napari_bioimg.core.data.axes import make_layout
from napari_bioimg.core.data.temporal import context_frames, stack_context
from napari_bioimg.core.inference.predict import predict

TINY = dict(model_config={"depth": 1, "base_channels": 8}, batch_size=2, patch_size=32, steps_per_epoch=4,
            epochs=1, time_limit=None, val_fraction=0, preview_every=0, learning_rate=5e-3)


def test_context_stacks_neighbouring_frames():
    assert context_frames(0, 5, 2) == [2, 1, 0, 1, 2] and context_frames(4, 5, 1) == [3, 4, 3]
    assert context_frames(0, 2, 2) == [1, 1, 0, 1, 1] and context_frames(0, 1, 1) == [0, 0, 0]
    for n in range(2, 6):  # no neighbour repeats the frame itself
        for k in range(1, 4):
            for t in range(n):
                frames = context_frames(t, n, k)
                assert frames[k] == t and t not in frames[:k] + frames[k + 1 :]
    x = np.arange(4, dtype=np.float32).reshape(4, 1, 1, 1) * np.ones((4, 1, 3, 3), np.float32)
    layout = make_layout((4, 3, 3), "TYX", 2)
    out = stack_context(x, layout, 1)
    assert out.shape == (4, 3, 3, 3)
    assert out[2, :, 0, 0].tolist() == [1, 2, 3] and out[0, :, 0, 0].tolist() == [1, 0, 1]


def test_temporal_context_train_and_predict(blobs2d, tmp_path):
    image, labels = blobs2d
    movie = np.stack([np.roll(image, 3 * t, axis=1) for t in range(4)])
    classes = np.stack([np.roll(np.where(labels > 0, 2, 1), 3 * t, axis=1) for t in range(4)]).astype(np.uint8)
    res = train_sync(movie, classes, TrainConfig(task="semantic", temporal_context=1, **TINY), axes="TYX")
    ck = res.checkpoint
    assert ck["data"]["in_channels"] == 3 and ck["data"]["temporal_context"] == 1
    mem = predict_sync(ck, movie, "TYX", tile=64)
    lazy = drain(predict(ck, PredictSource(movie, "TYX"), PredictConfig(tile=64, block=64), out=tmp_path / "p.zarr"))
    assert mem.shape == movie.shape
    np.testing.assert_array_equal(mem, lazy[...])  # frames t-1, t, t+1 are stacked the same way block by block
    with pytest.raises(InputError, match="time axis"):
        predict_sync(ck, image, "YX")
    with pytest.raises(Exception, match="temporal"):
        TrainConfig(temporal_context=-1).validate()


def test_anisotropic_unet_pools_z_less():
    model = get_model("unet", spatial_dims=3, in_channels=1, out_channels=2, depth=2, base_channels=4,
                      pool_z_levels=1)
    assert model.size_divisor == (2, 4, 4)
    assert model(torch.zeros(1, 1, 6, 40, 36)).shape == (1, 2, 6, 40, 36)
    assert auto_z_levels((8, 128, 128), 60, 3) == 1
    assert auto_z_levels(None, 60, 3) == 3  # the default 32x96x96 patch pools every level, as before
    assert auto_z_levels((32, 64, 64), 10, 3) == 1  # a shallow stack limits it


def test_flat_3d_patches_train_and_predict(blobs2d):
    image, labels = blobs2d
    vol = np.stack([image[:48, :48]] * 10)
    lvol = np.stack([labels[:48, :48]] * 10)
    cfg = TrainConfig(**dict(TINY, patch_size=(8, 32, 32), model_config={"depth": 2, "base_channels": 4}))
    res = train_sync(vol, lvol, cfg, axes="ZYX")
    assert res.checkpoint["model"]["config"]["pool_z_levels"] == 1  # Z halved once, Y and X twice
    out = predict_sync(res.checkpoint, vol, "ZYX", tile=(8, 32, 32))
    assert out.shape == vol.shape
