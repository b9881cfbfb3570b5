"""``napari-bioimg train --nproc N``: one model trained by N processes (gloo on the CPU), and its faults.

Each launch starts real processes (``python -m napari_bioimg.cli`` under torch's launcher), as a user's command does.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import tifffile
import torch

from napari_bioimg.cli import main
from napari_bioimg.core.formats.checkpoint import ModelCard, load_checkpoint

from .scenes import blobs

SMALL = ["--patch-size", "32", "--depth", "2", "--base-channels", "8", "--batch-size", "2", "--threads", "1"]


@pytest.fixture
def two_images(tmp_path):
    """imgs/{a,b}.tif of different sizes and masks/{a,b}_mask.tif."""
    for folder in ("imgs", "masks"):
        (tmp_path / folder).mkdir()
    for i, (name, shape) in enumerate([("a", (64, 70)), ("b", (80, 64))]):
        image, labels = blobs(shape, i)
        tifffile.imwrite(tmp_path / "imgs" / f"{name}.tif", image)
        tifffile.imwrite(tmp_path / "masks" / f"{name}_mask.tif", labels)
    return tmp_path


def train_args(d: Path, out: str, *args: str) -> list[str]:
    return ["train", "--image", str(d / "imgs"), "--labels", str(d / "masks"), "--out", str(d / out), *SMALL, *args]


def command(d: Path, *args: str) -> list[str]:
    """The command line a user types (a new process)."""
    return [sys.executable, "-m", "napari_bioimg.cli", *train_args(d, "m.pt", *args)]


def test_two_processes_write_one_model_file_that_predicts_like_a_single_process_one(two_images, capsys):
    d = two_images
    run = subprocess.run(command(d, "--nproc", "2", "--epochs", "2", "--steps-per-epoch", "3", "--quiet"),
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    summary = json.loads(next(line for line in run.stderr.splitlines() if line.startswith("{")))
    assert summary["steps"] == 6 and summary["images"] == 2
    assert run.stderr.count('{"model"') == 1  # rank 0 alone reports and writes
    parallel = load_checkpoint(d / "m.pt")
    # every rank drew its own patches, and their gradients were averaged: they end with the same weights
    assert parallel["training"]["data_parallel"] == {"processes": 2, "backend": "gloo", "replicas_in_sync": True}

    assert main(train_args(d, "one.pt", "--epochs", "2", "--steps-per-epoch", "3", "--quiet")) == 0
    alone = load_checkpoint(d / "one.pt")
    a, b = ModelCard.of(parallel), ModelCard.of(alone)
    for field in ("task", "model", "axes", "spatial_dims", "in_channels", "out_channels", "model_config"):
        assert getattr(a, field) == getattr(b, field), field
    assert {k: v.shape for k, v in parallel["state_dict"].items()} == \
        {k: v.shape for k, v in alone["state_dict"].items()}
    assert a.task_meta.keys() == b.task_meta.keys()  # calibrated like a single-process run

    for name in ("m", "one"):
        assert main(["predict", "--model", str(d / f"{name}.pt"), "--image", str(d / "imgs" / "b.tif"),
                     "--out", str(d / f"{name}.tif"), "--quiet"]) == 0
    ours, theirs = tifffile.imread(d / "m.tif"), tifffile.imread(d / "one.tif")
    assert ours.shape == theirs.shape == (80, 64) and ours.dtype == theirs.dtype


def _rank_pid(rank: int, parent: int) -> int | None:
    """The pid of the training process with ``rank`` that our launcher (``parent``) started."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"NAPARI_BIOIMG_LAUNCHER=1" in env and int(pid) != parent:
            return int(pid)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the processes through /proc")
def test_a_killed_rank_stops_the_others_with_one_error_naming_it_and_keeps_the_earlier_file(two_images):
    d = two_images
    (d / "m.pt").write_bytes(b"the earlier model")
    proc = subprocess.Popen(command(d, "--nproc", "2", "--time-limit", "120"), stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while "step 3 " not in "".join(err):  # both ranks are past their third step (the gradients are shared)
            assert proc.poll() is None and time.monotonic() < deadline, "".join(err)
            time.sleep(0.05)
        victim = _rank_pid(1, proc.pid)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        assert proc.wait(timeout=30) == 1
        assert time.monotonic() - killed < 10  # the others stopped within seconds, not at the 120 s limit
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        proc.stderr.close()
    text = "".join(err)
    errors = [line for line in text.splitlines() if "error" in line]
    assert errors == ["napari-bioimg: error: training process rank 1 (of 2) was killed (SIGKILL); the other "
                      "processes were stopped and no model file was written (an earlier one is unchanged)"], text
    assert (d / "m.pt").read_bytes() == b"the earlier model"
    assert sorted(p.name for p in d.iterdir()) == ["imgs", "m.pt", "masks"]  # no temporary file left either


def test_a_port_in_use_is_named_before_any_process_starts(two_images, capsys, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("MASTER_PORT", str(port))
        assert main(train_args(two_images, "m.pt", "--nproc", "2", "--epochs", "1")) == 2
    assert capsys.readouterr().err == (f"napari-bioimg: error: port {port} (MASTER_PORT) is already in use on this "
                                       "machine, by another training or program; set MASTER_PORT to a free port, or "
                                       "unset it to take any free one\n")


@pytest.mark.skipif(torch.cuda.device_count() > 1, reason="checks a machine with fewer GPUs than processes")
def test_more_processes_than_gpus_is_a_clear_message(two_images, capsys):
    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert main(train_args(two_images, "m.pt", "--nproc", "2", "--device", "cuda", "--epochs", "1")) == 2
    fewer = f"start at most {found} per machine, or train on the CPU" if found else "train on the CPU instead"
    assert capsys.readouterr().err == (f"napari-bioimg: error: 2 processes on CUDA need one GPU each, but this "
                                       f"machine has {found}; {fewer}\n")
    assert not (two_images / "m.pt").exists()


def test_nproc_must_be_positive(two_images, capsys):
    assert main(train_args(two_images, "m.pt", "--nproc", "0")) == 2
    assert "--nproc must be at least 1" in capsys.readouterr().err
