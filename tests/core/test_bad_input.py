"""Bad input gets a clear message and the user's data is left untouched."""

import numpy as np
import pytest

from napari_bioimg.core import TrainConfig, predict_sync, train_sync
from napari_bioimg.core import events as E
from napari_bioimg.core.errors import BioimgError, ConfigError, DeviceError, InputError
from napari_bioimg.core.runtime.device import resolve_device

FAST = dict(model_config={"depth": 2, "base_channels": 8}, batch_size=2, patch_size=32, steps_per_epoch=2,
            preview_every=0, epochs=1, time_limit=None)


def _data():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(64, 64)).astype(np.float32)
    lbl = np.zeros((64, 64), np.uint16)
    lbl[10:20, 10:20] = 1
    lbl[30:45, 30:50] = 2
    return img, lbl


def test_shape_mismatch():
    img, lbl = _data()
    with pytest.raises(InputError, match="does not match"):
        train_sync(img, lbl[:60], TrainConfig(**FAST))


def test_empty_annotations():
    img, lbl = _data()
    with pytest.raises(InputError, match="no objects"):
        train_sync(img, np.zeros_like(lbl), TrainConfig(**FAST))
    with pytest.raises(InputError, match="empty"):
        train_sync(img, np.zeros_like(lbl), TrainConfig(task="semantic", **FAST))


def test_single_class_semantic():
    img, lbl = _data()
    with pytest.raises(InputError, match="only one class"):
        train_sync(img, (lbl > 0).astype(np.uint8), TrainConfig(task="semantic", **FAST))


def test_nan_pixels_are_reported_and_image_untouched():
    img, lbl = _data()
    img[3, 3] = np.nan
    img[4, 4] = np.inf
    keep = img.copy()
    notes = []
    res = train_sync(img, lbl, TrainConfig(**FAST), callback=lambda e: isinstance(e, E.Notice) and notes.append(e))
    assert any("2 NaN/inf" in n.message for n in notes)
    np.testing.assert_array_equal(img, keep)
    out = predict_sync(res.checkpoint, img)
    assert out.shape == img.shape


def test_all_nan_image():
    img, lbl = _data()
    with pytest.raises(InputError, match="no finite"):
        train_sync(np.full_like(img, np.nan), lbl, TrainConfig(**FAST))


def test_image_smaller_than_patch():
    img, lbl = _data()
    res = train_sync(img[:20, :24], lbl[:20, :24], TrainConfig(**dict(FAST, patch_size=64)))
    assert predict_sync(res.checkpoint, img[:20, :24]).shape == (20, 24)


def test_2d_model_on_3d_image_predicts_slicewise_with_notice():
    img, lbl = _data()
    res = train_sync(img, lbl, TrainConfig(**FAST))
    notes = []
    out = predict_sync(res.checkpoint, np.stack([img, img]), "ZYX", callback=lambda e: isinstance(e, E.Notice) and notes.append(e))
    assert out.shape == (2, 64, 64)
    assert any("slice by slice" in n.message for n in notes)


def test_3d_model_on_2d_image():
    img, lbl = _data()
    vol, lvol = np.stack([img] * 8), np.stack([lbl] * 8)
    res = train_sync(vol, lvol, TrainConfig(**dict(FAST, patch_size=(8, 32, 32))), axes="ZYX")
    with pytest.raises(InputError, match="3D model needs a Z axis"):
        predict_sync(res.checkpoint, img)


def test_wrong_channel_count():
    img, lbl = _data()
    res = train_sync(img, lbl, TrainConfig(**FAST))
    with pytest.raises(InputError, match="expects 1 channel"):
        predict_sync(res.checkpoint, np.stack([img] * 3, -1), "YXC")


def test_missing_gpu_is_clear():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(DeviceError, match="CUDA was requested but is not available"):
        resolve_device("cuda")
    img, lbl = _data()
    with pytest.raises(DeviceError):
        train_sync(img, lbl, TrainConfig(**dict(FAST, device="cuda")))


def test_config_ranges():
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig(learning_rate=-1).validate()
    with pytest.raises(ConfigError, match="time limit"):
        TrainConfig(time_limit=None, epochs=None).validate()
    with pytest.raises(ConfigError, match="unknown task"):
        train_sync(*_data(), TrainConfig(**dict(FAST, task="nope")))
    assert issubclass(ConfigError, BioimgError)


def test_labels_with_fractions_or_negative():
    img, lbl = _data()
    with pytest.raises(InputError, match="integer"):
        train_sync(img, lbl + 0.5, TrainConfig(**FAST))
    with pytest.raises(InputError, match="negative"):
        train_sync(img, lbl.astype(np.int32) - 1, TrainConfig(**FAST))
