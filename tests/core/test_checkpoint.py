import numpy as np
import pytest
import torch

from napari_bioimg.core import TrainConfig, predict_sync, train_sync
from napari_bioimg.core.errors import CheckpointError
from napari_bioimg.core.formats.checkpoint import load_checkpoint, save_checkpoint
from napari_bioimg.core.formats.loading import load_model

FAST = dict(model_config={"depth": 2, "base_channels": 8}, batch_size=2, patch_size=32, steps_per_epoch=3,
            preview_every=0, epochs=1, time_limit=None)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(64, 64)).astype(np.float32)
    labels = np.zeros((64, 64), np.uint8)
    labels[10:30, 10:30] = 1
    labels[40:60, 35:60] = 2
    return image, train_sync(image, labels, TrainConfig(**FAST))


def test_round_trip_same_prediction(tmp_path, trained):
    image, res = trained
    path = save_checkpoint(res.checkpoint, tmp_path / "m.pt")
    ck = load_checkpoint(path)
    for key in ("model", "task", "normalizer", "data", "metrics", "train_config"):
        assert key in ck
    a = predict_sync(res.checkpoint, image)
    b = predict_sync(path, image)
    np.testing.assert_array_equal(a, b)
    assert load_model(path).task.name == "instance"


def test_atomic_write_keeps_old_file_on_failure(tmp_path, trained, monkeypatch):
    _, res = trained
    path = save_checkpoint(res.checkpoint, tmp_path / "m.pt")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(res.checkpoint, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_corrupt_and_foreign_files(tmp_path, trained):
    _, res = trained
    good = save_checkpoint(res.checkpoint, tmp_path / "m.pt")
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(trunc)
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not written by napari-bioimg"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = dict(res.checkpoint, state_dict={k: (v[..., :1] if v.ndim else v) for k, v in res.checkpoint["state_dict"].items()})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(bad, "cpu")
