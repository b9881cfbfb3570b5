"""Every registered model family passes the same checks (segmentation_models_pytorch's habit):
forward/backward, odd input sizes, 2D and 3D, a state-dict round trip, eval determinism. Then the
temporal family's own contract: frames in, the centre frame out, plugged into training by the
temporal context without changes to the training loop."""

import numpy as np
import pytest
import torch

from napari_bioimg.core import TrainConfig, get_model, list_models, predict_sync, train_sync
from napari_bioimg.core.models import model_entry

SMALL = {"unet": {"depth": 2, "base_channels": 4}, "unet-gru": {"depth": 2, "base_channels": 4},
         "autoencoder": {"depth": 2, "base_channels": 4, "latent_channels": 3},
         "cnn": {"depth": 3, "base_channels": 4}, "resnet": {"depth": 3, "base_channels": 4}}
IN = 3  # three channels: also three frames (t-1, t, t+1) for the temporal family


def build(name, spatial_dims, out=2):
    return get_model(name, spatial_dims=spatial_dims, in_channels=IN, out_channels=out, **SMALL.get(name, {}))


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("spatial_dims, shape", [(2, (37, 29)), (2, (16, 16)), (3, (9, 21, 19))])
def test_forward_backward_odd_sizes(name, spatial_dims, shape):
    model = build(name, spatial_dims)
    x = torch.randn(2, IN, *shape, requires_grad=True)
    y = model(x)
    want = (2, 2) if model_entry(name).kind == "classifier" else (2, 2, *shape)
    assert y.shape == want
    y.float().square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", list_models())
def test_state_dict_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = build(name, 2).eval()
    for p in model.parameters():  # non-trivial weights everywhere (some families start with zeros)
        p.data.normal_(0, 0.1)
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    twin = build(name, 2)
    twin.load_state_dict(torch.load(path, weights_only=True))
    twin.eval()
    x = torch.randn(2, IN, 24, 24)
    with torch.no_grad():
        assert torch.allclose(model(x), twin(x), atol=1e-6)
        assert torch.allclose(model(x)[:1], model(x[:1]), atol=1e-5)  # eval: each item on its own


def test_temporal_family_reads_frames_in_order():
    torch.manual_seed(0)
    # train mode: batch statistics keep the signal at unit scale through the untrained network
    model = get_model("unet-gru", spatial_dims=2, in_channels=3, out_channels=1, depth=2, base_channels=4).train()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x[:, [2, 1, 0]]))  # at initialisation the fusion adds nothing
        for fusion in model.fusions.values():
            fusion.mix.weight.normal_(0, 0.3)  # as after training: the neighbours count
        y = model(x)
        swapped = (model(x[:, [2, 1, 0]]) - y).abs().max() / y.std()  # t-1 and t+1 exchanged
        other_centre = (model(x[:, [0, 2, 1]]) - y).abs().max() / y.std()
    assert swapped > 0.05  # the direction of time matters (separate forward and backward GRUs)
    assert other_centre > 1  # the centre frame is the one decoded
    assert model.frames == 3 and model.fused_levels == [2]  # the bottleneck
    every = get_model("unet-gru", spatial_dims=2, in_channels=3, out_channels=1, depth=2, fuse="all")
    assert every.fused_levels == [0, 1, 2]  # every level the decoder reads


def test_temporal_family_options_are_checked():
    from napari_bioimg.core.errors import ConfigError

    with pytest.raises(ConfigError, match="odd number of frames"):
        get_model("unet-gru", spatial_dims=2, in_channels=4, out_channels=1)
    with pytest.raises(ConfigError, match="channels_per_frame"):
        get_model("unet-gru", spatial_dims=2, in_channels=5, out_channels=1, channels_per_frame=2)
    two = get_model("unet-gru", spatial_dims=2, in_channels=6, out_channels=2, channels_per_frame=2,
                    residual=True, fuse="all", top_skip=False, depth=1, base_channels=4)
    x = torch.randn(1, 6, 20, 20)
    assert two(x).shape == (1, 2, 20, 20) and two.fused_levels == [1]


def test_temporal_family_trains_and_predicts_a_timelapse_through_the_engine():
    """Temporal context 1 + unet-gru: the training loop, checkpoint and prediction need no change."""
    from napari_bioimg._sample_data import add_poisson_gaussian, load_timelapse

    clean = load_timelapse()[:4, :96, :96]
    noisy = add_poisson_gaussian(clean)
    cfg = TrainConfig(task="denoise", model="unet-gru", temporal_context=1, epochs=1, steps_per_epoch=4,
                      time_limit=None, batch_size=2, patch_size=32, preview_every=0)
    result = train_sync(noisy, None, cfg, axes="TYX")
    ckpt = result.checkpoint
    assert ckpt["data"]["in_channels"] == 3 and ckpt["data"]["temporal_context"] == 1
    assert ckpt["model"]["config"]["top_skip"] is False  # the denoise task's N2V2 settings apply to it too
    out = predict_sync(ckpt, noisy, axes="TYX")
    assert out.shape == noisy.shape and np.isfinite(out).all()


def test_temporal_family_segments_a_timelapse():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    labels = np.zeros((5, 64, 64), np.uint16)
    for t in range(5):
        for k, (cy, cx) in enumerate([(16, 16 + 2 * t), (44, 40 - t)], 1):
            labels[t][(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = k
    image = (labels > 0) * 150.0 + rng.normal(50, 20, labels.shape)
    cfg = TrainConfig(task="instance", model="unet-gru", temporal_context=1, epochs=1, steps_per_epoch=3,
                      time_limit=None, batch_size=2, patch_size=32, preview_every=0, val_fraction=0)
    ckpt = train_sync(image, labels, cfg, axes="TYX").checkpoint
    pred = predict_sync(ckpt, image, axes="TYX")
    assert pred.shape == labels.shape and pred.dtype.kind in "iu"
