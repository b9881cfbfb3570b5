"""Image-to-image tasks (denoise, restore, reconstruct): training, prediction, bad input."""

import numpy as np
import pytest
import torch

from napari_bioimg.core import TrainConfig, get_task, predict_sync, train_sync
from napari_bioimg.core import events as E
from napari_bioimg.core.errors import InputError
from napari_bioimg.core.metrics import psnr
from napari_bioimg.core.tasks.denoise import held_apart_boxes

FAST = dict(model_config={"depth": 2, "base_channels": 16}, batch_size=4, patch_size=48, steps_per_epoch=20,
            learning_rate=4e-3, preview_every=0, time_limit=None)
TINY = dict(FAST, model_config={"depth": 2, "base_channels": 8}, batch_size=2, patch_size=32, steps_per_epoch=2,
            epochs=1)


@pytest.fixture(scope="module")
def noisy_nuclei(sample_nuclei):
    """A real 96x96 crop of a nuclei slice (the clean reference) and a copy with Gaussian noise."""
    clean = sample_nuclei[0][14, 40:136, 60:156].astype(np.float32)
    rng = np.random.default_rng(0)
    noisy = clean + rng.normal(0, 0.15 * (clean.max() - clean.min()), clean.shape).astype(np.float32)
    return noisy, clean


def test_denoise_improves_psnr_on_real_nuclei(noisy_nuclei):
    noisy, clean = noisy_nuclei
    keep = noisy.copy()
    seen = []
    config = TrainConfig(task="denoise", epochs=3, **dict(FAST, model_config={"depth": 1, "base_channels": 16}))
    res = train_sync(noisy, None, config, callback=seen.append)
    np.testing.assert_array_equal(noisy, keep)
    vals = [e.metrics["blind_spot_loss"] for e in seen if isinstance(e, E.ValidationDone)]
    # the first validation is the untrained model's; after 60 steps 0.60-0.81 of it (seeds 0-2)
    assert len(vals) == 4 and vals[-1] < 0.9 * vals[0], vals
    out = predict_sync(res.checkpoint, noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32
    # gain over the noisy image: 7.4-9.3 dB at seeds 0-2 (60 steps, a few seconds); the untrained network -10 dB,
    # a Gaussian blur of sigma 0.5 px 3.7 dB (sigma 1 px: 9.5 dB, NL-means 11.2 dB: they need no training)
    gain = psnr(out, clean) - psnr(noisy, clean)
    assert gain > 6.0, f"PSNR gain only {gain:.2f} dB"
    # back in the image's intensity range, not the normalised one
    assert abs(float(out.mean()) - float(clean.mean())) < 0.1 * float(clean.max() - clean.min())
    assert res.checkpoint["model"]["config"]["top_skip"] is False  # N2V2 defaults
    assert res.checkpoint["model"]["config"]["pool"] == "blur"
    assert res.checkpoint["model"]["config"]["upsample"] == "resize"  # no faint grid (tests/core/test_models.py)


def test_denoise_with_reference_scores_psnr(noisy_nuclei):
    noisy, clean = noisy_nuclei
    res = train_sync(noisy, None, TrainConfig(task="denoise", **TINY), extra={"reference": clean})
    assert "psnr" in res.metrics and np.isfinite(res.metrics["psnr"])


def test_denoise_autoencoder_timelapse_and_preview(noisy_nuclei):
    noisy, _ = noisy_nuclei
    stack = np.stack([noisy, noisy[::-1], noisy[:, ::-1]])
    previews = []
    res = train_sync(stack, None, TrainConfig(task="denoise", model="autoencoder", **dict(TINY, preview_every=1e-9)),
                     axes="TYX", preview_index=(2,),
                     callback=lambda e: isinstance(e, E.PreviewReady) and previews.append(e))
    assert previews and previews[0].index == (2,) and previews[0].kind == "image"
    assert previews[0].data.shape == (96, 96) and previews[0].data.dtype == np.float32
    out = predict_sync(res.checkpoint, stack, "TYX")
    assert out.shape == stack.shape and out.dtype == np.float32


def test_multichannel_and_3d_keep_shape(noisy_nuclei):
    noisy, _ = noisy_nuclei
    yxc = np.stack([noisy, noisy.T], -1)
    res = train_sync(yxc, None, TrainConfig(task="denoise", **TINY), axes="YXC")
    out = predict_sync(res.checkpoint, yxc, "YXC")
    assert out.shape == yxc.shape and out.dtype == np.float32
    vol = np.stack([noisy[:40, :40]] * 8)
    res = train_sync(vol, None, TrainConfig(task="denoise", **dict(TINY, patch_size=(8, 32, 32))), axes="ZYX")
    assert res.checkpoint["data"]["spatial_dims"] == 3
    assert predict_sync(res.checkpoint, vol, "ZYX").shape == vol.shape


def test_restore_learns_from_target(noisy_nuclei):
    noisy, clean = noisy_nuclei
    res = train_sync(noisy, None, TrainConfig(task="restore", epochs=2, **FAST), extra={"target": clean})
    assert "psnr" in res.metrics
    out = predict_sync(res.checkpoint, noisy)
    assert out.dtype == np.float32 and psnr(out, clean) > psnr(noisy, clean) + 3


def test_restore_target_problems_are_clear(noisy_nuclei):
    noisy, clean = noisy_nuclei
    with pytest.raises(InputError, match=r"target image has shape \(96, 95\).*same pixels"):
        train_sync(noisy, None, TrainConfig(task="restore", **TINY), extra={"target": clean[:, :95]})
    with pytest.raises(InputError, match="needs a target"):
        train_sync(noisy, None, TrainConfig(task="restore", **TINY))
    with pytest.raises(InputError, match="target is constant"):
        train_sync(noisy, None, TrainConfig(task="restore", **TINY), extra={"target": np.ones_like(clean)})
    with pytest.raises(InputError, match="no finite"):
        train_sync(noisy, None, TrainConfig(task="restore", **TINY), extra={"target": np.full_like(clean, np.nan)})


def test_reconstruct_with_autoencoder(noisy_nuclei):
    noisy, _ = noisy_nuclei
    assert get_task("reconstruct").default_model == "autoencoder"
    res = train_sync(noisy, None, TrainConfig(task="reconstruct", model="autoencoder",
                                              **dict(TINY, model_config={"depth": 2, "latent_channels": 4})))
    assert res.checkpoint["model"]["name"] == "autoencoder" and "psnr" in res.metrics
    assert predict_sync(res.checkpoint, noisy).shape == noisy.shape


def test_constant_image():
    with pytest.raises(InputError, match="constant"):
        train_sync(np.full((64, 64), 7, np.uint16), None, TrainConfig(task="denoise", **TINY))


def test_constant_image_predicts_the_constant(noisy_nuclei):
    noisy, _ = noisy_nuclei
    res = train_sync(noisy, None, TrainConfig(task="denoise", **TINY))
    out = predict_sync(res.checkpoint, np.full((40, 50), 123, np.uint8))
    assert out.dtype == np.float32 and np.all(out == 123)


def test_nan_pixels_stay_nan(noisy_nuclei):
    noisy, _ = noisy_nuclei
    img = noisy.copy()
    img[10, 10] = np.nan
    img[50:53, 20] = np.inf
    keep = img.copy()
    notes = []
    res = train_sync(img, None, TrainConfig(task="denoise", **TINY),
                     callback=lambda e: isinstance(e, E.Notice) and notes.append(e.message))
    assert any("4 NaN/inf" in n for n in notes)
    out = predict_sync(res.checkpoint, img, callback=lambda e: isinstance(e, E.Notice) and notes.append(e.message))
    assert any("stay NaN" in n for n in notes)
    np.testing.assert_array_equal(img, keep)
    bad = ~np.isfinite(img)
    assert np.isnan(out[bad]).all() and np.isfinite(out[~bad]).all()


def test_thin_stack_is_refused_clearly():
    stack = np.random.default_rng(0).normal(size=(1, 1, 50)).astype(np.float32)
    with pytest.raises(InputError, match="too small"):
        train_sync(stack, None, TrainConfig(task="denoise", **TINY))


def test_uint8_output_never_overflows(noisy_nuclei):
    noisy, _ = noisy_nuclei
    img8 = np.clip((noisy - noisy.min()) / (noisy.max() - noisy.min()) * 400, 0, 255).astype(np.uint8)  # saturated
    res = train_sync(img8, None, TrainConfig(task="denoise", **TINY))
    out = predict_sync(res.checkpoint, img8)
    assert out.dtype == np.float32 and out.shape == img8.shape
    assert out.min() >= 0 and out.max() <= 255
    # the clip itself, independent of what the network happens to output
    task = get_task("denoise")
    meta = {"intensity_low": [0.0], "intensity_high": [200.0], "source_dtype": "|u1"}
    y = task.postprocess(np.array([[[-1.0, 0.5, 2.0]]], np.float32), meta)
    np.testing.assert_allclose(y, [[[0.0, 100.0, 255.0]]])


def test_held_apart_boxes():
    assert held_apart_boxes((1, 1, 32, 32), 0.15, 10_000) == []  # too small to spare
    (one,) = held_apart_boxes((1, 1, 256, 256), 0.15, 32768)
    size = np.prod([b.stop - b.start for b in one.box])
    assert 0.1 < size / 256**2 < 0.2 and all(b.stop == 256 for b in one.box)
    many = held_apart_boxes((30, 1, 511, 511), 0.15, 32768)
    assert len(many) == 4 and 0 < many[0].sample < many[-1].sample < 29
    assert sum(np.prod([b.stop - b.start for b in r.box]) for r in many) <= 32768 * 1.05
    thin = held_apart_boxes((2, 1, 8, 400, 400), 0.15, 2 * 8 * 48 * 48)
    assert all(r.box[0] == slice(0, 8) for r in thin)
    assert held_apart_boxes((1, 1, 256, 256), 0.0, 32768) == []


def test_temporal_context_masks_only_the_frame_itself(noisy_nuclei):
    noisy, _ = noisy_nuclei
    movie = np.stack([np.roll(noisy, 2 * t, axis=1) for t in range(4)])
    res = train_sync(movie, None, TrainConfig(task="denoise", temporal_context=1, **TINY), axes="TYX")
    data = res.checkpoint["data"]
    assert data["in_channels"] == 3 and data["out_channels"] == 1  # frames t-1, t, t+1 in; frame t out
    assert predict_sync(res.checkpoint, movie, "TYX").shape == movie.shape
    task, meta = get_task("denoise"), res.checkpoint["task"]["meta"]
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32))
    masked, (y, mask) = task.prepare_batch(x, x[:, 1:2], np.random.default_rng(1), meta)
    assert mask.shape == (2, 1, 32, 32) and mask.any()
    assert torch.equal(masked[:, [0, 2]], x[:, [0, 2]])  # the neighbouring frames are left as they are
    assert (masked[:, 1:2][mask] != x[:, 1:2][mask]).all()
    with pytest.raises(InputError, match="exact copy"):  # one frame: its "neighbours" would be itself
        train_sync(movie[:1], None, TrainConfig(task="denoise", temporal_context=1, **TINY), axes="TYX")
    clean = np.stack([np.roll(noisy_nuclei[1], 2 * t, axis=1) for t in range(4)])
    res = train_sync(movie, None, TrainConfig(task="restore", temporal_context=1, **TINY), axes="TYX",
                     extra={"target": clean})
    assert res.checkpoint["data"]["out_channels"] == 1
    assert predict_sync(res.checkpoint, movie, "TYX").shape == movie.shape


def test_block_by_block_prediction_matches_in_memory(noisy_nuclei, tmp_path):
    from napari_bioimg.core import PredictConfig
    from napari_bioimg.core.control import drain
    from napari_bioimg.core.inference.predict import predict

    noisy, _ = noisy_nuclei
    img16 = np.clip(noisy, 0, 65535).astype(np.uint16)
    res = train_sync(img16, None, TrainConfig(task="denoise", **TINY))
    mem = predict_sync(res.checkpoint, img16, tile=64)
    lazy = drain(predict(res.checkpoint, img16, PredictConfig(tile=64, block=64), out=tmp_path / "d.zarr"))
    assert lazy.shape == mem.shape == img16.shape  # the image's shape and intensities, not normalised values
    np.testing.assert_allclose(lazy[...], mem, rtol=1e-5, atol=1e-2)
    assert float(mem.max()) <= 65535
