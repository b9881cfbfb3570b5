"""One training pipeline (core.training.setup): an image array is a source like a file, so it enters as a data
set of one and takes the same path (the door, the holding, the assembly); every sampler answers one interface;
calibration is given its inputs, not the training loop."""

from dataclasses import replace

import numpy as np
import pytest
import tifffile
import torch

from napari_bioimg.core import TrainConfig, train_sync
from napari_bioimg.core.data.collect import collect
from napari_bioimg.core.data.objects import ObjectSampler
from napari_bioimg.core.data.patches import Sampler
from napari_bioimg.core.data.sampling import Prefetch
from napari_bioimg.core.training import setup as pipeline
from napari_bioimg.core.training.calibrate import HeldOut, calibrate

TINY = dict(task="instance", model_config={"depth": 2, "base_channels": 8}, batch_size=2, patch_size=32,
            steps_per_epoch=3, epochs=1, time_limit=None, preview_every=0, learning_rate=5e-3, seed=3)


def blobs(shape=(64, 72), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint16)
    for k, (cy, cx) in enumerate([(15, 15), (15, 45), (45, 25), (42, 55)], 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 60] = k
    return ((labels > 0) * 200.0 + rng.normal(60, 15, shape)).astype(np.float32), labels


@pytest.fixture
def held_kinds(monkeypatch):
    """The kind of holding each set-up assembled (``InMemory`` / ``Streamed``)."""
    seen = []
    real = pipeline.assemble

    def spy(held, *args):
        seen.append(type(held).__name__)
        return real(held, *args)

    monkeypatch.setattr(pipeline, "assemble", spy)
    return seen


def file_set(tmp_path, pairs):
    for i, (img, lbl) in enumerate(pairs):
        tifffile.imwrite(tmp_path / f"im{i}.tif", img)
        tifffile.imwrite(tmp_path / f"im{i}_masks.tif", lbl)
    return collect([tmp_path / f"im{i}.tif" for i in range(len(pairs))],
                   [tmp_path / f"im{i}_masks.tif" for i in range(len(pairs))]).open()


def test_an_array_and_the_same_image_as_a_file_set_train_the_same_way(tmp_path, held_kinds):
    image, labels = blobs()
    config = TrainConfig(**TINY)
    from_array = train_sync(image, labels, config, preview_index=None)
    from_file = train_sync(file_set(tmp_path, [(image, labels)]), None, config, preview_index=None)
    assert held_kinds == ["InMemory", "InMemory"]  # one image that fits: held in memory, however it came
    assert [h["loss"] for h in from_array.history] == pytest.approx([h["loss"] for h in from_file.history])
    for key, value in from_array.checkpoint["state_dict"].items():
        torch.testing.assert_close(from_file.checkpoint["state_dict"][key], value)


def test_a_big_lazy_image_is_streamed_like_a_set_of_files(tmp_path, monkeypatch, held_kinds):
    monkeypatch.setattr(pipeline, "IN_MEMORY_VALUES", 1000)
    image, labels = blobs()
    np.save(tmp_path / "big.npy", image)
    lazy = np.load(tmp_path / "big.npy", mmap_mode="r")
    config = TrainConfig(**TINY)
    one = pipeline.set_up(lazy, labels, config)
    two = pipeline.set_up(file_set(tmp_path, [blobs(seed=1), blobs((70, 60), seed=2)]), None, config)
    try:
        assert held_kinds == ["Streamed", "Streamed"]
        assert one.inputs is None and len(one.dataset) == 1 and len(two.dataset) == 2
    finally:
        one.close(), two.close()


def test_every_sampler_answers_one_interface(tmp_path):
    image, labels = blobs()
    in_memory = pipeline.set_up(image, labels, TrainConfig(**TINY))
    streamed = pipeline.set_up(file_set(tmp_path, [blobs(seed=1), blobs((70, 60), seed=2)]), None,
                               TrainConfig(**TINY))
    items = ObjectSampler(np.zeros((3, 1, 12, 12), np.float32), np.array([0, 1, 0]), (8, 8),
                          np.random.default_rng(0))
    try:
        for sampler in (in_memory.problem.sampler, streamed.problem.sampler, items,
                        Prefetch(streamed.problem.sampler, 2)):
            assert isinstance(sampler, Sampler), type(sampler).__name__
            x, y = sampler.sample(2, torch.device("cpu"))
            assert x.shape[0] == y.shape[0] == 2 and tuple(x.shape[2:]) == sampler.patch
        assert in_memory.problem.sampler.rng_state() is None  # draws from the loop's stream
        assert streamed.problem.sampler.rng_state() is not None  # its own stream, stored with the model
    finally:
        in_memory.close(), streamed.close()


def test_calibrate_takes_the_model_task_held_out_data_and_config():
    image, labels = blobs()
    setup = pipeline.set_up(image, labels, TrainConfig(**dict(TINY, val_fraction=0.3)))
    regions = setup.task.calibration_regions(setup.problem)
    assert regions  # instance segmentation calibrates on the held-out part
    own = {k: v.clone() for k, v in setup.model.state_dict().items()}
    other = {k: (v + 0.01 if v.is_floating_point() else v) for k, v in own.items()}
    held = HeldOut(setup.problem, regions, setup.inputs, margin=32)
    updates = calibrate(setup.model, setup.task, held, setup.config, other, device=setup.device)
    assert updates["calibration"]["regions"] == len(regions)
    assert {"threshold", "min_size"} <= set(updates)
    for key, value in setup.model.state_dict().items():  # the model has its own weights back
        assert torch.equal(value, own[key]), key
    fixed = calibrate(setup.model, setup.task, held, replace(setup.config, task_config={"threshold": 0.5,
                                                                                       "min_size": 10.0}),
                      other, device=setup.device)
    assert fixed == {}  # nothing left to choose when the user fixed every setting
    assert calibrate(setup.model, setup.task, HeldOut(setup.problem, [], setup.inputs, 32), setup.config, other,
                     device=setup.device) == {}
