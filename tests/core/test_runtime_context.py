"""Process-wide torch settings (core.runtime.context): changed only where a front end opts in, then put back.

The engine's training leaves the process's thread count and random streams as it found them (napari shares
the process); a seeded run still repeats; the command line's ``--threads`` applies for its run only.
"""

import threading

import numpy as np
import pytest
import torch

from napari_bioimg.core import TrainConfig, train_sync
from napari_bioimg.core.runtime.context import RuntimeContext, torch_random

TINY = dict(task="instance", model_config={"depth": 2, "base_channels": 8}, batch_size=2, patch_size=32,
            steps_per_epoch=2, epochs=1, time_limit=None, preview_every=0)


def image():
    rng = np.random.default_rng(0)
    labels = np.zeros((48, 48), np.uint16)
    labels[8:20, 8:20], labels[28:42, 26:40] = 1, 2
    return ((labels > 0) * 150.0 + rng.normal(50, 10, labels.shape)).astype(np.float32), labels


def test_runtime_context_sets_threads_and_seed_then_restores_them():
    before_threads, before_state = torch.get_num_threads(), torch.get_rng_state()
    with RuntimeContext(num_threads=before_threads + 1, seed=3):
        assert torch.get_num_threads() == before_threads + 1
        inside = torch.rand(4)
    assert torch.get_num_threads() == before_threads
    assert torch.equal(torch.get_rng_state(), before_state)
    torch.manual_seed(3)
    assert torch.equal(torch.rand(4), inside)  # the seed was applied inside
    torch.set_rng_state(before_state)


def test_runtime_context_restores_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(ValueError), RuntimeContext(num_threads=before + 2):
        raise ValueError("boom")
    assert torch.get_num_threads() == before


def test_torch_random_seeds_a_block_and_puts_the_streams_back():
    state = torch.get_rng_state()
    with torch_random(11):
        a = torch.rand(3)
    with torch_random(11):
        b = torch.rand(3)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)


def test_training_leaves_the_process_settings_alone(monkeypatch):
    """A library call (the widget's path) changes neither the thread count (even with num_threads set) nor the
    global random streams, yet a seeded run repeats."""
    calls = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append((n, threading.current_thread().name)))
    threads, state = torch.get_num_threads(), torch.get_rng_state()
    config = TrainConfig(seed=5, num_threads=threads + 1, **TINY)
    first = train_sync(*image(), config).checkpoint
    assert calls == []
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), state)
    second = train_sync(*image(), config).checkpoint
    for key, value in first["state_dict"].items():
        assert torch.equal(second["state_dict"][key], value), key
    monkeypatch.setattr(torch, "set_num_threads", real)


def test_command_line_opts_in_for_its_run(monkeypatch, tmp_path):
    """``train --threads N``: torch runs the training on N threads, and the process's count is back afterwards."""
    from napari_bioimg.cli.main import main
    from napari_bioimg.core.data.io import write_image
    from napari_bioimg.core.training import loop

    img, labels = image()
    write_image(tmp_path / "img.tif", img)
    write_image(tmp_path / "lab.tif", labels)
    seen = []
    real = loop.Trainer.step

    def step(self, *args):
        seen.append(torch.get_num_threads())
        return real(self, *args)

    monkeypatch.setattr(loop.Trainer, "step", step)
    before = torch.get_num_threads()
    rc = main(["train", "--task", "instance", "--image", str(tmp_path / "img.tif"), "--labels",
               str(tmp_path / "lab.tif"), "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2",
               "--patch-size", "32", "--depth", "2", "--base-channels", "8", "--threads", str(before + 1),
               "--out", str(tmp_path / "m.pt"), "--quiet"])
    assert rc == 0 and (tmp_path / "m.pt").exists()
    assert seen and set(seen) == {before + 1}
    assert torch.get_num_threads() == before
