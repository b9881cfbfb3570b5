import numpy as np
import pytest
import torch

from napari_bioimg.core import TrainConfig, predict_sync, train_sync
from napari_bioimg.core.errors import CheckpointError, InputError
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
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", boom)
    # a full disk: one line naming the file and saying nothing was lost (not "internal error: OSError ...")
    with pytest.raises(InputError, match=r"could not write .*m\.pt: No space left on device\. Nothing was lost"):
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


FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"


def test_a_version_1_model_file_still_loads_and_predicts_the_same():
    """tests/fixtures/model_v1.pt was written by napari-bioimg's format 1 (before the typed view)."""
    from napari_bioimg.core import predict_sync
    from napari_bioimg.core.formats.checkpoint import FORMAT_VERSION, ModelCard

    ck = load_checkpoint(FIXTURES / "model_v1.pt")
    assert ck["format_version"] == FORMAT_VERSION >= 2
    card = ModelCard.of(ck)
    assert (card.task, card.model, card.spatial_dims, card.in_channels, card.out_channels) == ("instance", "unet", 2, 1, 3)
    assert card.temporal_context == 0 and card.steps == 3 and card.trainable
    image = np.load(FIXTURES / "model_v1_input.npy")
    np.testing.assert_array_equal(predict_sync(FIXTURES / "model_v1.pt", image), np.load(FIXTURES / "model_v1_output.npy"))


def test_saved_files_get_the_umask_permissions(tmp_path):
    """Colleagues on a shared drive can read a saved model (atomic writes used to make 0600 files)."""
    import os

    ck = load_checkpoint(FIXTURES / "model_v1.pt")
    old = os.umask(0o022)
    try:
        path = save_checkpoint(ck, tmp_path / "m.pt")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary file left
