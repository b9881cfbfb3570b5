"""Worker tier: the training generator drained synchronously."""

import numpy as np
import pytest

from napari_bioimg.core import Control, TrainConfig, predict_sync, train, train_sync
from napari_bioimg.core import events as E
from napari_bioimg.core.control import drain
from napari_bioimg.core.metrics import matching

FAST = dict(model_config={"depth": 2, "base_channels": 16}, batch_size=4, patch_size=48, steps_per_epoch=10, learning_rate=5e-3,
            preview_every=0)


def test_instance_learns_blobs(blobs2d):
    image, labels = blobs2d
    seen = []
    res = train_sync(image, labels, TrainConfig(task="instance", epochs=6, time_limit=None, **FAST),
                     callback=seen.append)
    kinds = {type(e) for e in seen}
    assert {E.TrainingStarted, E.StepDone, E.ValidationDone} <= kinds
    steps = [e for e in seen if isinstance(e, E.StepDone)]
    assert steps[-1].step == 60 and steps[-1].fraction == pytest.approx(1.0)
    assert np.mean([s.loss for s in steps[-10:]]) < np.mean([s.loss for s in steps[:10]])
    pred = predict_sync(res.checkpoint, image)
    assert pred.shape == labels.shape and pred.dtype.kind == "u"
    assert matching(labels, pred)["thresholds"]["0.5"]["f1"] > 0.7


def test_semantic_from_scribbles(blobs2d):
    image, labels = blobs2d
    scribbles = np.zeros(labels.shape, np.uint8)
    scribbles[5:8, 5:90] = 1  # background stroke
    scribbles[88:91, 5:90] = 1
    for cy, cx in [(20, 20), (50, 30), (70, 70)]:
        scribbles[cy - 3 : cy + 3, cx - 3 : cx + 3] = 2  # object strokes
    res = train_sync(image, scribbles, TrainConfig(task="semantic", epochs=5, time_limit=None, **FAST))
    pred = predict_sync(res.checkpoint, image)
    assert set(np.unique(pred)) <= {1, 2}
    acc = np.mean((pred == 2) == (labels > 0))
    assert acc > 0.85
    # the user's annotations are untouched
    assert scribbles.max() == 2 and scribbles[6, 6] == 1


def test_stop_returns_model_so_far(blobs2d):
    image, labels = blobs2d
    control = Control()
    gen = train(image, labels, TrainConfig(time_limit=600, **FAST), control=control)
    n = 0
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        if isinstance(ev, E.StepDone):
            n += 1
            if n == 3:
                control.stop()
    assert result.stopped_early and result.steps == 3
    assert "state_dict" in result.checkpoint


def test_preview_events(blobs2d):
    image, labels = blobs2d
    stack = np.stack([image, image[::-1]])
    lbl = np.stack([labels, labels[::-1]])
    cfg = TrainConfig(epochs=1, time_limit=None, **dict(FAST, preview_every=1e-9))
    previews = []
    train_sync(stack, lbl, cfg, axes="TYX", preview_index=(1,), callback=lambda e: isinstance(e, E.PreviewReady) and previews.append(e))
    assert previews and previews[0].index == (1,) and previews[0].data.shape == labels.shape


def test_seeded_runs_repeat(blobs2d):
    image, labels = blobs2d
    cfg = TrainConfig(epochs=1, time_limit=None, val_fraction=0, **FAST)
    a = train_sync(image, labels, cfg)
    b = train_sync(image, labels, cfg)
    assert [h["loss"] for h in a.history] == pytest.approx([h["loss"] for h in b.history])


def test_sgd_and_3d(blobs2d):
    image, labels = blobs2d
    vol = np.stack([image[:48, :48]] * 8)
    lvol = np.stack([labels[:48, :48]] * 8)
    cfg = TrainConfig(epochs=1, time_limit=None, optimizer="sgd",
                      **dict(FAST, patch_size=(8, 32, 32), learning_rate=0.01))
    res = train_sync(vol, lvol, cfg, axes="ZYX")
    assert res.checkpoint["data"]["spatial_dims"] == 3
    out = predict_sync(res.checkpoint, vol, "ZYX")
    assert out.shape == vol.shape


def test_drain_returns_value():
    def g():
        yield 1
        return 5

    assert drain(g()) == 5


def test_early_stopping_after_patience(blobs2d):
    """With a vanishing learning rate the score cannot improve: training stops after `patience` checks."""
    image, labels = blobs2d
    cfg = TrainConfig(epochs=20, time_limit=None, patience=2, **dict(FAST, steps_per_epoch=2, learning_rate=1e-12,
                                                                    model_config={"depth": 2, "base_channels": 8,
                                                                                  "norm": "none"}))
    seen = []
    res = train_sync(image, labels, cfg, callback=seen.append)
    assert res.steps == 6  # validations at steps 2 (best), 4 and 6 (no better) -> stop
    assert any(isinstance(e, E.Notice) and "early stop" in e.message for e in seen)
    assert res.checkpoint["training"]["early_stopped"] and not res.stopped_early


def test_patience_is_validated():
    from napari_bioimg.core.errors import ConfigError

    with pytest.raises(ConfigError, match="patience"):
        TrainConfig(patience=0).validate()


def test_tta_prediction_close_to_plain(blobs2d):
    from napari_bioimg.core.formats.loading import load_model
    from napari_bioimg.core.inference.runner import model_fn

    image, labels = blobs2d
    res = train_sync(image, labels, TrainConfig(epochs=1, time_limit=None, **FAST))
    loaded = load_model(res.checkpoint, "cpu")
    import torch

    x = torch.from_numpy(loaded.normalizer.apply(image[None, None]))
    plain = model_fn(loaded)(x)
    tta = model_fn(loaded, tta=True)(x)
    assert tta.shape == plain.shape
    assert torch.allclose(tta.sum(1), torch.ones_like(tta.sum(1)), atol=1e-4)  # still probabilities
    out = predict_sync(res.checkpoint, image, tta=True)
    assert out.shape == labels.shape
