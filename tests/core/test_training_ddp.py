"""Data-parallel training (core.training.ddp): the one pipeline inside a process group.

The processes themselves are started in tests/cli/test_cli_ddp.py; here the hooks are checked in this process:
a one-process group trains exactly the single-process model, and a rank > 0 draws its own patches from the same
validation split.
"""

import numpy as np
import pytest
import torch
import torch.distributed as dist

from napari_bioimg.core import TrainConfig, train_sync
from napari_bioimg.core.data.dataset import DataSet, make_sample
from napari_bioimg.core.errors import ConfigError, DeviceError
from napari_bioimg.core.training import ddp
from napari_bioimg.core.training.setup import set_up

TINY = dict(model_config={"depth": 2, "base_channels": 8}, batch_size=2, patch_size=32, steps_per_epoch=3,
            learning_rate=5e-3, preview_every=0, time_limit=None, epochs=2, num_threads=1)


def blobs(shape, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint16)
    for k, (cy, cx) in enumerate([(15, 15), (15, 45), (45, 25), (40, 50)], 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 49] = k
    return ((labels > 0) * 200.0 + rng.normal(60, 15, shape)).astype(np.float32), labels


def two_images():
    return DataSet([make_sample(*blobs((64, 70), 0), axes="YX"), make_sample(*blobs((80, 64), 1), axes="YX")])


def test_one_process_group_trains_exactly_the_single_process_model(tmp_path):
    config = TrainConfig(task="instance", **TINY)
    alone = train_sync(two_images(), None, config).checkpoint
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        parallel = train_sync(two_images(), None, config).checkpoint
    finally:
        dist.destroy_process_group()
    assert parallel["training"]["data_parallel"] == {"processes": 1, "backend": "gloo", "replicas_in_sync": True}
    assert "data_parallel" not in alone["training"]
    assert parallel["state_dict"].keys() == alone["state_dict"].keys()
    for key, value in alone["state_dict"].items():
        assert torch.equal(parallel["state_dict"][key], value), key
    assert [h["loss"] for h in parallel["history"]] == [h["loss"] for h in alone["history"]]


def first_batch(rank, monkeypatch, config):
    monkeypatch.setattr(ddp, "current", lambda: ddp.World(rank, 2, rank, "gloo") if rank is not None else None)
    setup = set_up(two_images(), None, config)
    try:
        x, _ = setup.problem.sampler.sample(4)
        return setup, x
    finally:
        setup.close()


def test_each_rank_draws_its_own_patches_from_the_same_validation_split(monkeypatch):
    config = TrainConfig(task="instance", **TINY)
    alone, x_alone = first_batch(None, monkeypatch, config)
    zero, x0 = first_batch(0, monkeypatch, config)
    one, x1 = first_batch(1, monkeypatch, config)
    assert alone.world is None and zero.world.main and not one.world.main
    assert torch.equal(x0, x_alone)  # rank 0 is the single-process run
    assert not torch.equal(x1, x0)
    assert [r.box for r in one.problem.val_regions] == [r.box for r in zero.problem.val_regions]
    again = first_batch(1, monkeypatch, config)[1]
    assert torch.equal(again, x1)  # seeded: rank 1 draws the same patches in a rerun


def test_several_processes_need_a_seed(monkeypatch):
    monkeypatch.setattr(ddp, "current", lambda: ddp.World(1, 2, 1, "gloo"))
    with pytest.raises(ConfigError, match="seed must be set when several processes train"):
        set_up(two_images(), None, TrainConfig(task="instance", **dict(TINY, seed=None)))


def test_a_cuda_run_on_more_processes_than_gpus_is_refused():
    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(DeviceError, match=f"{found + 1} processes on CUDA need one GPU each, "
                       f"but this machine has {found}"):
        ddp.check_gpus(found + 1, "cuda")
    ddp.check_gpus(found + 1, "cpu")  # the CPU takes any number
