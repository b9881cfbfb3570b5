"""The denoising command line contract: train / predict / evaluate round trip, clear errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_bioimg.cli import main

FAST = ["--epochs", "1", "--steps-per-epoch", "3", "--depth", "2", "--base-channels", "8", "--patch-size", "32",
        "--batch-size", "2", "--quiet"]


def run(*args):
    return subprocess.run([sys.executable, "-m", "napari_bioimg.cli", *args], capture_output=True, text=True)


@pytest.fixture
def pair(tmp_path, sample_nuclei):
    clean = sample_nuclei[0][14, 100:164, 100:180]  # real uint16 crop, 64 x 80
    rng = np.random.default_rng(1)
    noisy = clean + rng.normal(0, 0.15 * (int(clean.max()) - int(clean.min())), clean.shape)
    tifffile.imwrite(tmp_path / "noisy.tif", noisy.astype(np.float32))
    tifffile.imwrite(tmp_path / "clean.tif", clean)
    return tmp_path


def _psnr(a, b):
    """PSNR in dB against ``b`` with ``b``'s range, computed here, apart from the product's metric."""
    b = b.astype(np.float64)
    return 10 * np.log10(np.ptp(b) ** 2 / np.mean((a.astype(np.float64) - b) ** 2))


@pytest.mark.parametrize("model", ["unet", "autoencoder"])
def test_denoise_round_trip(pair, capsys, model):
    d = pair
    learn = ["--epochs", "3", "--steps-per-epoch", "20", "--depth", "1", "--base-channels", "16", "--patch-size",
             "48", "--batch-size", "4", "--lr", "4e-3", "--quiet"]
    assert main(["train", "--task", "denoise", "--model", model, "--image", str(d / "noisy.tif"),
                 "--out", str(d / "m.pt"), *learn]) == 0
    assert main(["predict", "--model", str(d / "m.pt"), "--image", str(d / "noisy.tif"),
                 "--out", str(d / "den.tif"), "--quiet"]) == 0
    out = tifffile.imread(d / "den.tif")
    assert out.shape == (64, 80) and out.dtype == np.float32
    capsys.readouterr()
    assert main(["evaluate", "--task", "denoise", "--pred", str(d / "den.tif"), "--truth", str(d / "clean.tif")]) == 0
    report = json.loads(capsys.readouterr().out)
    clean, noisy = tifffile.imread(d / "clean.tif"), tifffile.imread(d / "noisy.tif")
    assert report["task"] == "denoise" and report["psnr"] == pytest.approx(_psnr(out, clean), abs=1e-3)
    assert report["data_range"] == pytest.approx(np.ptp(clean.astype(np.float64)))
    # 60 steps learn to denoise: gain 6.1-6.7 dB at seeds 0-2 (both models); the untrained network loses ~10 dB
    gain = report["psnr"] - _psnr(noisy, clean)
    assert gain > 4.5, gain
    assert 0 < report["ssim"] <= 1


def test_time_limit_and_uint8_stack(tmp_path, capsys):
    rng = np.random.default_rng(2)
    stack = np.clip(rng.normal(128, 60, (3, 40, 48)), 0, 255).astype(np.uint8)  # TYX, saturating
    tifffile.imwrite(tmp_path / "s.tif", stack, metadata={"axes": "TYX"}, photometric="minisblack")
    assert main(["train", "--task", "denoise", "--image", str(tmp_path / "s.tif"), "--out", str(tmp_path / "m.pt"),
                 "--time-limit", "2", "--depth", "2", "--base-channels", "8", "--batch-size", "2", "--quiet"]) == 0
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--image", str(tmp_path / "s.tif"),
                 "--out", str(tmp_path / "o.tif"), "--quiet"]) == 0
    out = tifffile.imread(tmp_path / "o.tif")
    assert out.shape == stack.shape and out.dtype == np.float32 and out.min() >= 0 and out.max() <= 255
    capsys.readouterr()
    assert main(["evaluate", "--task", "denoise", "--pred", str(tmp_path / "o.tif"), "--truth",
                 str(tmp_path / "s.tif"), "--axes", "TYX"]) == 0
    assert "ssim" in json.loads(capsys.readouterr().out)


def test_restore_round_trip(pair):
    d = pair
    assert main(["train", "--task", "restore", "--image", str(d / "noisy.tif"), "--target", str(d / "clean.tif"),
                 "--out", str(d / "r.pt"), *FAST]) == 0
    assert main(["predict", "--model", str(d / "r.pt"), "--image", str(d / "noisy.tif"),
                 "--out", str(d / "r.tif"), "--quiet"]) == 0
    assert tifffile.imread(d / "r.tif").dtype == np.float32


def test_errors_are_one_line(pair):
    d = pair
    tifffile.imwrite(d / "small.tif", np.zeros((64, 70), np.uint16))
    res = run("train", "--task", "restore", "--image", str(d / "noisy.tif"), "--target", str(d / "small.tif"),
              "--out", str(d / "x.pt"), "--epochs", "1")
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0
    assert "small.tif: the target has shape (64, 70)" in res.stderr and not (d / "x.pt").exists()
    res = run("train", "--task", "restore", "--image", str(d / "noisy.tif"), "--out", str(d / "x.pt"))
    assert res.returncode == 2 and "needs --target" in res.stderr
    res = run("train", "--task", "denoise", "--image", str(d / "noisy.tif"), "--labels", str(d / "clean.tif"),
              "--out", str(d / "x.pt"))
    assert res.returncode == 2 and "does not use --labels" in res.stderr
    tifffile.imwrite(d / "flat.tif", np.full((32, 32), 9, np.uint8))
    res = run("train", "--task", "denoise", "--image", str(d / "flat.tif"), "--out", str(d / "x.pt"), "--epochs", "1")
    assert res.returncode == 2 and "constant" in res.stderr
    tifffile.imwrite(d / "thin.tif", np.zeros((1, 1, 30), np.float32))
    res = run("train", "--task", "denoise", "--image", str(d / "thin.tif"), "--out", str(d / "x.pt"), "--epochs", "1")
    assert res.returncode == 2 and "too small" in res.stderr
    res = run("evaluate", "--task", "denoise", "--pred", str(d / "small.tif"), "--truth", str(d / "clean.tif"))
    assert res.returncode == 2 and "differs" in res.stderr
    assert not (d / "x.pt").exists()
