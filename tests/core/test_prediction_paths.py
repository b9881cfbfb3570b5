"""Every prediction path starts from the same preamble (runner.prepare): the same message for the same bad
input, the same tile default; progress carries elapsed time and an ETA; a stopped run leaves nothing behind."""

import tempfile
from dataclasses import replace

import numpy as np
import pytest

from napari_bioimg.core import PredictConfig, PredictSource, TrainConfig, predict_sync, train_sync
from napari_bioimg.core import events as E
from napari_bioimg.core.control import Control, drain
from napari_bioimg.core.errors import ConfigError, InputError
from napari_bioimg.core.formats.checkpoint import save_checkpoint
from napari_bioimg.core.formats.export import sample_input
from napari_bioimg.core.formats.loading import load_model
from napari_bioimg.core.inference import blocks
from napari_bioimg.core.inference.predict import predict
from tests.conftest import make_objects2d


class Planned(Exception):
    """Raised by :class:`PlanCatcher` with the plan a distributed prediction made."""


class PlanCatcher:
    """Stands in for a dask client: catches the plan the distributed path scatters, and stops there."""

    def scatter(self, plan, broadcast=False):
        raise Planned(plan)


@pytest.fixture(scope="module")
def classifier():
    image, labels, truth = make_objects2d()
    picked = list(truth)[:12]
    table = {"label_id": picked, "class": [truth[i] for i in picked]}
    cfg = TrainConfig(task="classify", model_config={"depth": 2, "base_channels": 4}, epochs=1, steps_per_epoch=1,
                      time_limit=None, val_fraction=0, preview_every=0)
    return train_sync(image, labels, cfg, extra={"classes": table}).checkpoint, labels


def _message(gen) -> str:
    with pytest.raises(InputError) as info:
        drain(gen)
    return str(info.value)


def test_the_same_bad_input_gets_the_same_message_on_every_path(blob_model, classifier, tmp_path):
    rgb = np.zeros((64, 64, 3), np.float32)  # three channels for one-channel models
    np.save(tmp_path / "rgb.npy", rgb)
    model = save_checkpoint(blob_model, tmp_path / "m.pt")
    messages = {
        "in memory": _message(predict(blob_model, PredictSource(rgb, "YXC"))),
        "blocks": _message(predict(blob_model, PredictSource(rgb, "YXC"), out=tmp_path / "p.zarr")),
        "distributed": _message(predict(model, PredictSource(tmp_path / "rgb.npy", "YXC"), out=tmp_path / "d.zarr",
                                        client=PlanCatcher())),
        "classify": _message(predict(classifier[0], PredictSource(rgb, "YXC", labels=classifier[1][:64, :64]))),
    }
    with pytest.raises(InputError) as info:
        sample_input(load_model(blob_model, "cpu"), rgb, "YXC")
    messages["export sample"] = str(info.value)
    assert len(set(messages.values())) == 1, messages
    assert "expects 1 channel(s) but the image has 3 (axes YXC)" in messages["in memory"]
    assert not (tmp_path / "p.zarr").exists() and not (tmp_path / "d.zarr").exists()


def test_a_bad_option_is_refused_the_same_way_and_named(blob_model, tmp_path):
    image = np.zeros((64, 64), np.float32)
    bad = PredictConfig(overlap=1.5)
    for gen in (predict(blob_model, image, bad), predict(blob_model, image, bad, lazy=True)):
        with pytest.raises(ConfigError) as info:  # PredictConfig's declaration, on every path
            drain(gen)
        assert info.value.field == "overlap" and str(info.value).startswith("overlap must be less than 1")


def test_the_tile_default_is_the_same_on_every_tiled_path(blob_model, blob_field, tmp_path):
    """The network's preferred tile wins over the general default everywhere (distributed used to ignore it)."""
    image = blob_field[0][:96, :96]
    loaded = load_model(blob_model, "cpu")
    loaded.protocol = replace(loaded.protocol, preferred_tile=(32, 32))  # as an imported package declares one
    totals = {}
    for name, gen in (("in memory", predict(loaded, image, lazy=False)),
                      ("blocks", predict(loaded, image, PredictConfig(block=512), out=tmp_path / "p.zarr"))):
        events = []
        drain(gen, events.append)
        totals[name] = max(e.total for e in events if isinstance(e, E.PredictProgress) and e.stage == "tiles")
    assert totals["in memory"] == totals["blocks"] == 16  # 32-pixel tiles with 25% overlap over 96 pixels: 4 x 4
    np.save(tmp_path / "img.npy", image)
    model_path = tmp_path / "m.pt"
    save_checkpoint(blob_model, model_path)
    with pytest.raises(Planned) as planned:
        drain(predict(model_path, tmp_path / "img.npy", out=tmp_path / "d.zarr", client=PlanCatcher()))
    assert planned.value.args[0].tile == (256, 256)  # the U-Net has no preferred tile: the general default
    assert not (tmp_path / "d.zarr").exists()


def test_progress_carries_elapsed_seconds_and_an_eta(blob_model, blob_field):
    events = []
    predict_sync(blob_model, blob_field[0], tile=64, batch_size=1, callback=events.append)
    progress = [e for e in events if isinstance(e, E.PredictProgress)]
    assert len(progress) > 2
    assert all(b.elapsed >= a.elapsed for a, b in zip(progress, progress[1:])) and progress[-1].elapsed > 0
    assert all(e.eta is not None and e.eta >= 0 for e in progress if e.done)
    assert progress[-1].done == progress[-1].total and progress[-1].eta == 0


def test_a_stopped_prediction_to_a_temporary_folder_leaves_nothing(blob_model, blob_field, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    control = Control()
    gen = predict(blob_model, blob_field[0], PredictConfig(tile=32, block=64), lazy=True, control=control)
    assert drain(gen, lambda ev: isinstance(ev, E.PredictProgress) and control.stop()) is None
    assert list(tmp_path.iterdir()) == []
    with monkeypatch.context() as m:  # a failure while the store is being written
        m.setattr(blocks, "finish_block", lambda *a: (_ for _ in ()).throw(MemoryError("full")))
        with pytest.raises(MemoryError):
            drain(predict(blob_model, blob_field[0], PredictConfig(tile=64), lazy=True))
    assert list(tmp_path.iterdir()) == []
    done = drain(predict(blob_model, blob_field[0], PredictConfig(tile=64), lazy=True))
    folders = list(tmp_path.iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("napari-bioimg-") and done.shape == blob_field[0].shape


def _spheres(n=6, shape=(24, 64, 64), radius=6, seed=0):
    """Well-separated balls: their probabilities as a 2D model's slices would give them."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.indices(shape)
    truth = np.zeros(shape, np.uint16)
    centres = []
    while len(centres) < n:
        c = rng.integers([radius + 1] * 3, np.array(shape) - radius - 1)
        if all(np.linalg.norm(c - d) > 2 * radius + 3 for d in centres):
            centres.append(c)
    for k, (z, y, x) in enumerate(centres, 1):
        truth[(zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= radius ** 2] = k
    return truth


def test_a_2d_model_links_the_slices_of_a_stack_into_3d_objects():
    from scipy import ndimage as ndi

    from napari_bioimg.core.tasks import get_task

    truth = _spheres()
    inner = np.zeros(truth.shape, bool)
    for z in range(truth.shape[0]):  # a 2D model sees each slice alone: interiors eroded in YX only
        inner[z] = ndi.binary_erosion(truth[z] > 0, iterations=2)
    prob = np.stack([(truth == 0), inner, (truth > 0) & ~inner]).astype(np.float32)
    task = get_task("instance")
    meta = {"threshold": 0.5, "min_size": 10, "median_area": 100, "border_fragment": 0.25}
    per_slice = sum(int(task.postprocess(prob[:, z], meta).max()) for z in range(truth.shape[0]))
    linked = task.postprocess_volume(prob, meta)
    assert per_slice > 3 * truth.max()  # every slice of a ball would be its own object
    assert int(linked.max()) == int(truth.max())
    for k in range(1, int(truth.max()) + 1):  # each ball is one object, whole
        ids, counts = np.unique(linked[truth == k], return_counts=True)
        assert ids[np.argmax(counts)] > 0 and counts.max() >= 0.9 * (truth == k).sum()


def test_predicting_a_stack_with_a_2d_instance_model_gives_3d_ids():
    image, labels, _ = make_objects2d()
    res = train_sync(image, labels, TrainConfig(task="instance", model_config={"depth": 2, "base_channels": 8},
                                                batch_size=4, patch_size=64, epochs=1, steps_per_epoch=40,
                                                time_limit=None, preview_every=0, seed=0))
    stack = np.stack([image] * 4)  # the same slice four times: each object is a column through the stack
    linked = predict_sync(res.checkpoint, stack, "ZYX")
    one = predict_sync(res.checkpoint, image, "YX")
    assert linked.shape == stack.shape and int(one.max()) > 0
    assert all(np.array_equal(linked[0], linked[z]) for z in range(1, 4))  # one id through all slices
    assert abs(int(linked.max()) - int(one.max())) <= max(2, int(one.max()) // 10)  # ~ the objects of a slice
    res.checkpoint["task"]["meta"]["link_slices"] = False  # per slice: ids continue from slice to slice
    separate = predict_sync(res.checkpoint, stack, "ZYX")
    assert int(separate.max()) == 4 * int(separate[0].max())
