"""Object embeddings: shapes, ids, progress, stop, layouts, classifier features, the 2D reduction."""

import numpy as np
import pytest

from napari_bioimg.core.analysis import EmbedConfig, embed_objects, embed_objects_sync, pca, reduce_2d
from napari_bioimg.core.analysis import reduce as R
from napari_bioimg.core.control import Control
from napari_bioimg.core.errors import ConfigError, InputError
from napari_bioimg.core.events import PredictProgress, StepDone
from tests.conftest import make_objects2d

QUICK = EmbedConfig(steps=15, time_limit=None, batch_size=16)


def knn_agreement(features, y, k=3):
    """Leave-one-out k-NN accuracy of ``y`` in ``features`` (principal component scores: kept as they are)."""
    f = np.asarray(features, dtype=np.float64)
    d = ((f[:, None] - f[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :k]
    votes = [max(set(row), key=list(row).count) for row in y[nearest]]
    return float(np.mean(np.array(votes) == y))


def test_embedding_of_every_object_with_progress(objects2d):
    image, labels, truth = objects2d
    before = labels.copy()
    events = []
    emb = embed_objects_sync(image, labels, QUICK, callback=events.append)
    ids = np.unique(labels)[1:]
    assert np.array_equal(emb.ids, ids)
    assert emb.features.shape == (len(ids), QUICK.n_features) and np.isfinite(emb.features).all()
    # mean (on the object) and max pooled at every encoder level: 8, 16 and 32 channels, and the latent
    assert emb.info["raw_features"] == 2 * (8 + 16 + 32 + QUICK.latent_channels)
    assert emb.coords.shape == (len(ids), 2) and emb.reduction == "pca" and emb.source == "autoencoder"
    assert np.array_equal(labels, before)  # the user's objects are never changed
    steps = [e for e in events if isinstance(e, StepDone)]
    assert len(steps) == 15 and steps[-1].fraction == pytest.approx(1.0)
    assert isinstance(events[-1], PredictProgress) and events[-1].done == events[-1].total == len(ids)
    cols = emb.columns()
    assert list(cols)[:2] == ["label_id", "emb_0"] and list(cols)[-2:] == ["x2d", "y2d"]
    assert emb.info["steps"] == 15 and emb.info["n_objects"] == len(ids)


def test_embedding_groups_objects_by_kind():
    """Bright round, dim round and elongated objects: neighbours in feature space share the kind."""
    image, labels, truth = make_objects2d(1, shape=(160, 200))
    emb = embed_objects_sync(image, labels, EmbedConfig(steps=40, time_limit=None, reduction="pca"))
    y = np.array([truth[int(i)] for i in emb.ids])
    assert knn_agreement(emb.features, y) >= 0.85


def test_features_do_not_depend_on_the_crop_orientation():
    """An object and its turned or mirrored twin (same crop, turned) get the same feature vector."""
    import torch

    from napari_bioimg.core import get_model
    from napari_bioimg.core.analysis.embed import autoencoder_features

    net = get_model("autoencoder", spatial_dims=2, in_channels=2, out_channels=2, depth=2, base_channels=4,
                    latent_channels=6).eval()
    x = torch.randn(3, 2, 16, 16)
    x[:, 1] = (x[:, 1] > 0).float()
    with torch.no_grad():
        f = autoencoder_features(net.encoder, x)
        turned = autoencoder_features(net.encoder, torch.rot90(x, 1, (2, 3)))
        other = autoencoder_features(net.encoder, x.roll(1, 0))
    assert f.shape == (3, 2 * (4 + 8 + 16 + 6))
    assert torch.allclose(f, turned, atol=1e-5) and not torch.allclose(f, other, atol=1e-3)


def test_stop_ends_training_and_still_embeds(objects2d):
    image, labels, _ = objects2d
    control = Control()
    gen = embed_objects(image, labels, EmbedConfig(time_limit=600, reduction="pca"), control=control)
    steps = 0
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            emb = stop.value
            break
        if isinstance(ev, StepDone):
            steps += 1
            if steps == 3:
                control.stop()
    assert emb is not None and emb.info["steps"] == 3 and emb.info["stopped_early"]
    assert len(emb.ids) == len(np.unique(labels)) - 1


def test_stop_while_encoding_cancels(objects2d, monkeypatch):
    from napari_bioimg.core.analysis import embed as E

    monkeypatch.setattr(E, "CHUNK", 8)  # several chunks of objects
    image, labels, _ = objects2d
    control = Control()
    gen = embed_objects(image, labels, QUICK, control=control)
    for ev in gen:
        if isinstance(ev, PredictProgress):
            break
    control.stop()
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value is None


def test_timelapse_objects_are_embedded_per_frame():
    image, labels, _ = make_objects2d(3, shape=(60, 80))
    stack = np.stack([image, image[:, ::-1]])
    lbl = np.stack([labels, np.where(labels[:, ::-1] > 0, labels[:, ::-1] + 100, 0)]).astype(np.uint16)
    emb = embed_objects_sync(stack, lbl, QUICK, axes="TYX")
    assert len(emb.ids) == len(np.unique(lbl)) - 1
    assert set(emb.table.sample.tolist()) == {0, 1}


def test_volume_objects_get_3d_crops():
    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[:16, :40, :40]
    labels = np.zeros((16, 40, 40), np.uint16)
    for k, (z, y, x) in enumerate([(5, 10, 10), (8, 28, 12), (10, 12, 30), (6, 30, 30)], 1):
        labels[(zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 < 25] = k
    image = (labels > 0) * 100.0 + rng.normal(0, 5, labels.shape)
    emb = embed_objects_sync(image, labels, EmbedConfig(steps=3, time_limit=None, reduction="pca", batch_size=4))
    assert len(emb.info["crop_size"]) == 3 and emb.features.shape == (4, 32)


def test_classifier_features(objects2d, tmp_path):
    from napari_bioimg.core import TrainConfig, train_sync

    image, labels, truth = objects2d
    ids = sorted(truth)[:12]
    cfg = TrainConfig(task="classify", model="cnn", epochs=1, steps_per_epoch=5, time_limit=None, batch_size=8,
                      val_fraction=0, model_config={"depth": 2, "base_channels": 4}, preview_every=0)
    ckpt = train_sync(image, labels, cfg, extra={"classes": {"label_id": ids, "class": [truth[i] for i in ids]}}
                      ).checkpoint
    emb = embed_objects_sync(image, labels, EmbedConfig(reduction="pca"), classifier=ckpt)
    assert emb.source == "classifier" and emb.info["raw_features"] == 2 * 8  # mean and max of the last stage
    assert emb.features.shape == (len(truth), 16)
    assert "steps" not in emb.info


def test_bad_input_is_clear(objects2d):
    image, labels, _ = objects2d
    with pytest.raises(InputError, match="empty"):
        embed_objects_sync(image, np.zeros_like(labels), QUICK)
    with pytest.raises(InputError, match="shape"):
        embed_objects_sync(image, labels[:-1], QUICK)
    with pytest.raises(ConfigError, match="time limit"):
        EmbedConfig(time_limit=None, steps=None).validate()
    with pytest.raises(ConfigError, match="reduction"):
        EmbedConfig(reduction="tsne").validate()


def test_pca_is_deterministic_and_orders_variance():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(200, 5)) * np.array([5, 1, 1, 1, 1]) + np.array([0, 0, 3, 0, 0])
    a, b = pca(f), pca(f.copy())
    assert np.array_equal(a, b) and a.shape == (200, 2)
    assert a[:, 0].var() >= a[:, 1].var()
    assert np.array_equal(pca(f[:1]), np.zeros((1, 2)))  # one object: nothing to project


def test_umap_is_optional(monkeypatch):
    f = np.random.default_rng(0).normal(size=(30, 4))
    monkeypatch.setattr(R, "umap_available", lambda: False)
    coords, used = reduce_2d(f, "auto")
    assert used == "pca" and coords.shape == (30, 2)
    with pytest.raises(ConfigError, match="umap-learn"):
        reduce_2d(f, "umap")


@pytest.mark.skipif(not R.umap_available(), reason="umap-learn is not installed (optional extra)")
def test_umap_when_installed():
    f = np.random.default_rng(0).normal(size=(40, 4))
    coords, used = reduce_2d(f, "umap")
    assert used == "umap" and coords.shape == (40, 2) and np.isfinite(coords).all()
