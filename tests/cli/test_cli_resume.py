"""Command line: --resume continues a stopped run exactly, --init fine-tunes, Ctrl+C saves a resumable model."""

import os
import signal
import subprocess
import sys
import time

import pytest
import tifffile
import torch

from napari_bioimg.cli.main import main
from napari_bioimg.cli.parser import build_parser
from napari_bioimg.cli.train import train_config_from_args
from napari_bioimg.core import Control, train
from napari_bioimg.core import events as E
from napari_bioimg.core.control import drain
from napari_bioimg.core.formats.checkpoint import load_checkpoint, save_checkpoint

FLAGS = ["--epochs", "3", "--steps-per-epoch", "3", "--depth", "2", "--base-channels", "8", "--patch-size", "32",
         "--batch-size", "2", "--lr", "5e-3", "--quiet"]


@pytest.fixture
def files(tmp_path, blobs2d):
    image, labels = blobs2d
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    return tmp_path


def test_resume_from_cli_matches_uninterrupted(files, capsys):
    d = files
    common = ["train", "--image", str(d / "img.tif"), "--labels", str(d / "lbl.tif")]
    assert main([*common, "--out", str(d / "full.pt"), *FLAGS]) == 0
    # the same command line, stopped after step 4 (as Ctrl+C or the GUI's Stop does)
    config = train_config_from_args(build_parser().parse_args([*common, "--out", "-", *FLAGS]))
    control = Control()
    image, labels = tifffile.imread(d / "img.tif"), tifffile.imread(d / "lbl.tif")
    half = drain(train(image, labels, config, control=control, preview_index=None),
                 lambda ev: isinstance(ev, E.StepDone) and ev.step == 4 and control.stop())
    assert half.steps == 4
    save_checkpoint(half.checkpoint, d / "half.pt")
    capsys.readouterr()
    assert main([*common, "--out", str(d / "resumed.pt"), "--resume", str(d / "half.pt"), "--lr", "0.1",
                 "--quiet"]) == 0
    assert "--lr ignored" in capsys.readouterr().err
    full, resumed = load_checkpoint(d / "full.pt"), load_checkpoint(d / "resumed.pt")
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in full["history"]], rel=1e-5)
    for key in ("state_dict", "last_state_dict"):
        a, b = full.get(key), resumed.get(key)
        assert (a is None) == (b is None)
        for k in a or {}:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_init_fine_tunes_with_task_from_model(files, capsys):
    d = files
    base = ["train", "--image", str(d / "img.tif"), "--labels", str(d / "lbl.tif")]
    assert main([*base, "--out", str(d / "a.pt"), "--task", "instance", *FLAGS]) == 0
    assert main([*base, "--out", str(d / "b.pt"), "--init", str(d / "a.pt"), "--epochs", "1",
                 "--steps-per-epoch", "2", "--patch-size", "32", "--batch-size", "2", "--quiet"]) == 0
    b = load_checkpoint(d / "b.pt")
    assert b["task"]["name"] == "instance" and [h["step"] for h in b["history"]] == list(range(1, 12))
    assert b["model"]["config"]["base_channels"] == 8  # the architecture of the starting model
    capsys.readouterr()
    code = main([*base, "--out", str(d / "c.pt"), "--init", str(d / "a.pt"), "--resume", str(d / "a.pt")])
    err = capsys.readouterr().err  # argparse: not allowed together; one line, exit code 2
    assert code == 2 and "not allowed with" in err and err.strip().count("\n") == 0


def test_ctrl_c_stops_and_saves_resumable_model(files):
    d = files
    cmd = [sys.executable, "-m", "napari_bioimg.cli", "train", "--image", str(d / "img.tif"), "--labels",
           str(d / "lbl.tif"), "--out", str(d / "m.pt"), "--time-limit", "600", "--depth", "1", "--base-channels",
           "4", "--patch-size", "16", "--batch-size", "1"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.time() + 120
    seen = ""
    while "step " not in seen and time.time() < deadline:  # the progress bar shows training steps
        seen += proc.stderr.read(1)
    proc.send_signal(signal.SIGINT)
    err = seen + proc.communicate(timeout=120)[1]
    assert proc.returncode == 0, err
    assert "--resume" in err
    ck = load_checkpoint(d / "m.pt")
    assert ck["training"]["stopped_early"] and not ck["resume"]["finished"] and ck["resume"]["step"] >= 1
