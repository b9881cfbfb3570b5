"""``predict(model, image, config)``: the image is taken once as a ``PredictSource``, one runner is picked at the
door, and every runner gets the same ``PredictConfig`` object."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import pytest
import zarr

from napari_bioimg.core import PredictConfig, PredictSource, TrainConfig, train_sync
from napari_bioimg.core.control import drain
from napari_bioimg.core.errors import ConfigError
from napari_bioimg.core.formats.checkpoint import save_checkpoint
from napari_bioimg.core.formats.loading import load_model
from napari_bioimg.core.inference import blocks, distributed
from napari_bioimg.core.inference.predict import Runner, choose_runner, predict
from napari_bioimg.core.inference.source import Kind
from tests.conftest import make_objects2d
from tests.core.test_lazy import same_partition

door = importlib.import_module("napari_bioimg.core.inference.predict")  # the module, not the function


@pytest.fixture
def runners(monkeypatch):
    """Every runner replaced by a recorder: which one ran, with which source and configuration."""
    calls = []

    def recorder(runner):
        def run(model, source, config, **keywords):
            calls.append(SimpleNamespace(runner=runner, model=model, source=source, config=config, **keywords))
            return runner
            yield  # a generator, as the runners are

        return run

    monkeypatch.setattr(door, "run_in_memory", recorder(Runner.MEMORY))
    monkeypatch.setattr(door, "run_items", recorder(Runner.ITEMS))
    monkeypatch.setattr(blocks, "run_blocks", recorder(Runner.BLOCKS))
    monkeypatch.setattr(distributed, "run_distributed", recorder(Runner.DISTRIBUTED))
    return calls


@pytest.fixture(scope="module")
def classifier():
    image, labels, truth = make_objects2d()
    picked = list(truth)[:12]
    cfg = TrainConfig(task="classify", model_config={"depth": 2, "base_channels": 4}, epochs=1, steps_per_epoch=1,
                      time_limit=None, val_fraction=0, preview_every=0)
    table = {"label_id": picked, "class": [truth[i] for i in picked]}
    return train_sync(image, labels, cfg, extra={"classes": table}).checkpoint, labels


def _inputs(tmp_path, image):
    """Each kind of image a user hands over, and the runner it must reach (``predict`` keywords alongside)."""
    da = pytest.importorskip("dask.array")
    np.save(tmp_path / "image.npy", image)
    store = zarr.open_array(str(tmp_path / "image.zarr"), mode="w", shape=image.shape, dtype=image.dtype)
    store[...] = image
    return {
        "numpy array": (image, {}, Runner.MEMORY, Kind.ARRAY),
        "napari multiscale layer data": ([image, image[::2, ::2]], {}, Runner.MEMORY, Kind.ARRAY),
        "numpy array, lazy asked for": (image, {"lazy": True}, Runner.BLOCKS, Kind.ARRAY),
        "numpy array, zarr out": (image, {"out": tmp_path / "o.zarr"}, Runner.BLOCKS, Kind.ARRAY),
        "dask array": (da.from_array(image, chunks=32), {}, Runner.BLOCKS, Kind.LAZY),
        "zarr array": (store, {}, Runner.BLOCKS, Kind.LAZY),
        "file path": (str(tmp_path / "image.npy"), {}, Runner.BLOCKS, Kind.FILE),
        "zarr folder": (tmp_path / "image.zarr", {}, Runner.BLOCKS, Kind.FILE),
        "file path, in memory asked for": (str(tmp_path / "image.npy"), {"lazy": False}, Runner.MEMORY, Kind.FILE),
        "a source with axes": (PredictSource(image, "YX"), {}, Runner.MEMORY, Kind.ARRAY),
        "a source of multiscale data": (PredictSource([image, image[::2, ::2]]), {}, Runner.MEMORY, Kind.ARRAY),
    }


def test_each_kind_of_image_reaches_its_runner_with_the_config_object(blob_model, blob_field, runners, tmp_path):
    image = blob_field[0][:64, :64]
    config = PredictConfig(tile=32)
    for name, (given, keywords, runner, kind) in _inputs(tmp_path, image).items():
        runners.clear()
        assert drain(predict(blob_model, given, config, **keywords)) is runner, name
        (call,) = runners
        assert call.config is config, name  # the one object, not keywords re-spelt per runner
        assert call.source.kind is kind, name
    assert np.shares_memory(runners[0].source.data, image)  # a source is not a copy of the user's array


def test_a_big_array_goes_block_by_block(blob_model, blob_field, runners, monkeypatch):
    image = blob_field[0]
    assert drain(predict(blob_model, image)) is Runner.MEMORY
    monkeypatch.setattr(door, "LAZY_BYTES", 1000)
    assert drain(predict(blob_model, image)) is Runner.BLOCKS


def test_a_cluster_and_object_classification_reach_their_runners(blob_model, classifier, runners, tmp_path):
    model_path = save_checkpoint(blob_model, tmp_path / "m.pt")
    image = np.zeros((64, 64), np.float32)
    np.save(tmp_path / "image.npy", image)
    client = object()
    assert drain(predict(model_path, str(tmp_path / "image.npy"), out=tmp_path / "o.zarr",
                         client=client)) is Runner.DISTRIBUTED
    assert runners[-1].client is client and runners[-1].model == model_path  # the workers load it by path
    model, labels = classifier
    assert drain(predict(model, PredictSource(labels.astype(np.float32), labels=labels))) is Runner.ITEMS
    assert runners[-1].source.labels is labels


def test_image_tasks_keep_a_lazy_array_in_memory_unless_asked():
    """Image tasks map their result to the image's own intensities, which blocks of an array do not know."""
    da = pytest.importorskip("dask.array")
    loaded = SimpleNamespace(task=SimpleNamespace(predicts_items=False, output_kind="image"), out_channels=1,
                             temporal_context=0)
    lazy = PredictSource(da.zeros((64, 64), chunks=32))
    assert choose_runner(loaded, lazy) is Runner.MEMORY
    assert choose_runner(loaded, lazy, lazy=True) is Runner.BLOCKS
    assert choose_runner(loaded, lazy, out="o.zarr") is Runner.BLOCKS
    loaded.task.output_kind = "labels"  # a labels task: a lazy array's labels are computed lazily too
    assert choose_runner(loaded, lazy) is Runner.BLOCKS


def test_one_config_gives_one_result_in_memory_and_block_by_block(blob_model, blob_field):
    image = blob_field[0][:128, :160]
    config = PredictConfig(tile=32, overlap=0.5, batch_size=3, block=64, label_margin=40, tta=True)
    in_memory = drain(predict(blob_model, image, config, lazy=False))
    by_blocks = drain(predict(blob_model, image, config, lazy=True))
    assert isinstance(in_memory, np.ndarray) and isinstance(by_blocks, zarr.Array)
    assert same_partition(in_memory, by_blocks[...])
    default = drain(predict(blob_model, image, PredictConfig(block=64), lazy=True))[...]
    assert not same_partition(by_blocks[...], default)  # the configuration did reach the block runner


BAD = [("tile", 4), ("tile", (32, 2)), ("overlap", 1.0), ("overlap", -0.1), ("batch_size", 0), ("block", 8),
       ("label_margin", -1), ("workers", 0)]


@pytest.mark.parametrize("name, value", BAD)
def test_a_refused_setting_is_named_before_anything_is_read(name, value, tmp_path):
    bad = PredictConfig(**{name: value})
    image = tmp_path / "absent.tif"
    for keywords in ({}, {"lazy": True}, {"out": tmp_path / "o.zarr"}, {"client": object()}):
        with pytest.raises(ConfigError) as info:  # not "file not found": the model and image are not opened yet
            drain(predict(tmp_path / "absent.pt", image, bad, **keywords))
        assert info.value.field == name and str(info.value).startswith(f"{name} ")
    assert list(tmp_path.iterdir()) == []


def test_predict_sync_spells_settings_as_keywords(blob_model, blob_field):
    image = blob_field[0][:64, :64]
    assert np.array_equal(door.predict_sync(blob_model, image, tile=32, tta=True),
                          drain(predict(blob_model, image, PredictConfig(tile=32, tta=True))))
    with pytest.raises(ConfigError) as info:
        door.predict_sync(load_model(blob_model, "cpu"), image, overlap=2)
    assert info.value.field == "overlap"
