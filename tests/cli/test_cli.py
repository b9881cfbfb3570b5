"""The command line contract: train / predict / evaluate on files, errors as one line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from skimage import io

from napari_bioimg.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "napari_bioimg.cli", *args], capture_output=True, text=True)


@pytest.fixture
def files(tmp_path, blobs2d):
    image, labels = blobs2d
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    return tmp_path


def test_train_predict_evaluate_instance(files, capsys):
    d = files
    assert main(["train", "--task", "instance", "--image", str(d / "img.tif"), "--labels", str(d / "lbl.tif"),
                 "--out", str(d / "m.pt"), "--epochs", "4", "--steps-per-epoch", "10", "--depth", "2",
                 "--base-channels", "16", "--lr", "5e-3", "--patch-size", "48", "--batch-size", "4"]) == 0
    assert (d / "m.pt").exists()
    assert main(["predict", "--model", str(d / "m.pt"), "--image", str(d / "img.tif"), "--out", str(d / "p.tif")]) == 0
    pred = tifffile.imread(d / "p.tif")
    assert pred.shape == (96, 96) and pred.dtype.kind == "u"
    capsys.readouterr()
    assert main(["evaluate", "--task", "instance", "--pred", str(d / "p.tif"), "--truth", str(d / "lbl.tif")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_true"] == 7
    assert set(report["thresholds"]) == {"0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8", "0.85", "0.9"}
    for key in ("f1", "precision", "recall", "mean_ap"):
        assert 0 <= report[key] <= 1
    assert report["f1"] > 0.5


def test_semantic_png_round_trip(tmp_path, blobs2d, capsys):
    image, labels = blobs2d
    io.imsave(tmp_path / "img.png", np.clip(image, 0, 255).astype(np.uint8), check_contrast=False)
    scrib = np.zeros(labels.shape, np.uint8)
    scrib[2:6, :] = 1
    scrib[labels == 3] = 2
    scrib[labels == 5] = 2
    io.imsave(tmp_path / "scrib.png", scrib, check_contrast=False)
    assert main(["train", "--task", "semantic", "--image", str(tmp_path / "img.png"), "--labels",
                 str(tmp_path / "scrib.png"), "--out", str(tmp_path / "s.pt"), "--epochs", "2",
                 "--steps-per-epoch", "5", "--depth", "2", "--base-channels", "8", "--quiet"]) == 0
    assert main(["predict", "--model", str(tmp_path / "s.pt"), "--image", str(tmp_path / "img.png"),
                 "--out", str(tmp_path / "p.png"), "--quiet"]) == 0
    pred = io.imread(tmp_path / "p.png")
    assert pred.shape == labels.shape
    capsys.readouterr()
    truth = np.where(labels > 0, 2, 1).astype(np.uint8)
    tifffile.imwrite(tmp_path / "truth.tif", truth)
    assert main(["evaluate", "--task", "semantic", "--pred", str(tmp_path / "p.png"), "--truth",
                 str(tmp_path / "truth.tif")]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep["per_class"]) >= {"1", "2"} and 0 <= rep["mean_iou"] <= 1


def test_errors_are_one_line_and_nonzero(files):
    d = files
    (d / "bad.pt").write_bytes(b"\x00" * 100)
    res = run("predict", "--model", str(d / "bad.pt"), "--image", str(d / "img.tif"), "--out", str(d / "o.tif"))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "napari-bioimg: error:" in res.stderr
    tifffile.imwrite(d / "small.tif", np.zeros((10, 10), np.uint16))
    res = run("train", "--image", str(d / "img.tif"), "--labels", str(d / "small.tif"), "--out", str(d / "x.pt"),
              "--epochs", "1")
    assert res.returncode == 2 and "does not match" in res.stderr
    assert not (d / "x.pt").exists()
    res = run("train", "--image", str(d / "img.tif"), "--labels", str(d / "lbl.tif"), "--out", str(d / "x.pt"),
              "--device", "cuda", "--epochs", "1")
    import torch

    if not torch.cuda.is_available():
        assert res.returncode == 2 and "CUDA was requested" in res.stderr
    res = run("predict", "--model", str(d / "missing.pt"), "--image", str(d / "img.tif"), "--out", str(d / "o.tif"))
    assert res.returncode == 2 and "not found" in res.stderr


def test_info_lists_tasks(capsys):
    assert main(["info"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "instance" in out["tasks"] and "unet" in out["models"]


@pytest.mark.parametrize("flag, value, message", [  # the engine's message, about the flag that set the value
    ("--time-limit", "-5", "--time-limit must be greater than 0"), ("--time-limit", "0", "--time-limit must be"),
    ("--batch-size", "0", "--batch-size must be at least 1"), ("--lr", "0", "--lr must be greater than 0"),
    ("--epochs", "0", "--epochs must be at least 1"), ("--steps-per-epoch", "0", "--steps-per-epoch must be"),
    ("--threads", "0", "--threads must be at least 1"),
])
def test_out_of_range_training_values_are_refused(files, capsys, flag, value, message):
    d = files
    args = ["train", "--image", str(d / "img.tif"), "--labels", str(d / "lbl.tif"), "--out", str(d / "x.pt"),
            flag, value]
    if flag not in ("--time-limit", "--epochs"):
        args += ["--epochs", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "napari-bioimg: error:" in err and message in err and err.strip().count("\n") == 0
    assert not (d / "x.pt").exists()


def test_train_passes_only_what_the_user_gave():
    """The engine decides every default (lr, batch size, model, budget): the CLI adds none of its own."""
    from napari_bioimg.cli.parser import build_parser
    from napari_bioimg.cli.train import train_config_from_args
    from napari_bioimg.core import TrainConfig

    def config(*flags):
        return train_config_from_args(build_parser().parse_args(["train", "--image", "i.tif", "--out", "m.pt", *flags]))

    assert config() == TrainConfig()
    assert config("--task", "classify").batch_size is None and config("--task", "denoise").learning_rate is None
    given = config("--epochs", "3", "--grad-clip", "0", "--no-augment", "--seed", "0", "--threads", "2")
    assert (given.time_limit, given.epochs, given.grad_clip, given.augment, given.num_threads) == (None, 3, None,
                                                                                                  False, 2)
