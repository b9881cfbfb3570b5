"""Command line: export a trained model and predict with the bioimage.io package in a fresh process."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tifffile

from napari_bioimg._sample_data import SLICE_2D
from napari_bioimg.cli import main
from napari_bioimg.core import predict_sync


def run(*args):
    return subprocess.run([sys.executable, "-m", "napari_bioimg.cli", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sample_nuclei):
    d = tmp_path_factory.mktemp("export")
    image, labels = sample_nuclei
    tifffile.imwrite(d / "img.tif", image[SLICE_2D])
    tifffile.imwrite(d / "lbl.tif", labels[SLICE_2D])
    assert main(["train", "--image", str(d / "img.tif"), "--labels", str(d / "lbl.tif"), "--out", str(d / "m.pt"),
                 "--epochs", "2", "--steps-per-epoch", "4", "--depth", "2", "--base-channels", "8",
                 "--patch-size", "64", "--batch-size", "2", "--val-fraction", "0", "--quiet"]) == 0
    return d


def test_bioimageio_export_then_fresh_process_predicts_the_same(trained, capsys):
    d = trained
    assert main(["export", "--model", str(d / "m.pt"), "--format", "bioimageio", "--out", str(d / "m.zip"),
                 "--sample", str(d / "img.tif"), "--name", "Nuclei test model", "--author", "A. Tester"]) == 0
    assert "wrote" in capsys.readouterr().err
    with zipfile.ZipFile(d / "m.zip") as z:
        assert "rdf.yaml" in z.namelist()
    # a colleague's fresh Python process: only the zip and the image
    res = run("predict", "--model", str(d / "m.zip"), "--image", str(d / "img.tif"), "--out", str(d / "p.tif"),
              "--quiet")
    assert res.returncode == 0, res.stderr
    original = predict_sync(str(d / "m.pt"), tifffile.imread(d / "img.tif"))
    np.testing.assert_array_equal(tifffile.imread(d / "p.tif"), original)
    res = run("info", "--model", str(d / "m.zip"))
    assert res.returncode == 0 and json.loads(res.stdout)["task"]["name"] == "instance"


def test_torchscript_and_onnx_export(trained, capsys):
    d = trained
    assert main(["export", "--model", str(d / "m.pt"), "--format", "torchscript", "--out", str(d / "m.ts")]) == 0
    assert (d / "m.ts").exists() and json.loads((d / "m.json").read_text())["exported_as"] == "torchscript"
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    capsys.readouterr()
    assert main(["export", "--model", str(d / "m.pt"), "--format", "onnx", "--out", str(d / "m.onnx")]) == 0
    err = capsys.readouterr().err
    diff = float(err.split("max abs difference")[1].split()[0])
    assert diff < 1e-4


def test_export_errors_are_one_line(trained, capsys):
    d = trained
    capsys.readouterr()
    assert main(["export", "--model", str(d / "missing.pt"), "--out", str(d / "x.zip")]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and err.count("\n") == 1
    assert main(["export", "--model", str(d / "m.pt"), "--out", str(d / "x.bin")]) == 2
    assert ".zip" in capsys.readouterr().err
    assert main(["predict", "--model", str(d / "missing.zip"), "--image", str(d / "img.tif"),
                 "--out", str(d / "o.tif")]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_folder_is_predicted_with_a_bioimageio_package(trained, tmp_path, capsys):
    """The folder pre-check reads packages as the workers do (it used to accept .pt files only)."""
    from napari_bioimg.core.formats.export import export_model

    d = trained
    package = export_model(str(d / "m.pt"), "bioimageio", tmp_path / "pkg.zip", sample=tifffile.imread(d / "img.tif"))
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a.tif", tifffile.imread(d / "img.tif")[:96, :96])
    assert main(["predict", "--model", str(package), "--image", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--workers", "1", "--quiet"]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.tif"]
