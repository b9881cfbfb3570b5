"""Built-in models from the command line: predict with no training, fine-tune from one, list them."""

import json

import numpy as np
import pytest
import tifffile

from napari_bioimg.cli import main
from napari_bioimg.core.formats.loading import read_card
from napari_bioimg.core.metrics import matching


@pytest.fixture
def nuclei(tmp_path):
    """The bundled 2D nuclei sample (real; no built-in trained on it) and its labels, as files."""
    from napari_bioimg._sample_data import nuclei_2d

    (image, _, _), (labels, _, _) = nuclei_2d()
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "lbl.tif", labels)
    return tmp_path, labels


def test_predict_with_a_builtin_and_no_training_finds_the_nuclei(nuclei):
    d, truth = nuclei
    assert main(["predict", "--model", "builtin:nuclei-2d", "--image", str(d / "img.tif"), "--out",
                 str(d / "p.tif"), "--quiet", "--threads", "1"]) == 0
    pred = tifffile.imread(d / "p.tif")
    assert pred.shape == truth.shape
    assert matching(truth, pred)["thresholds"]["0.5"]["f1"] > 0.5


def test_diameter_rescales_and_far_outside_the_range_warns(nuclei, capsys):
    d, truth = nuclei
    assert main(["predict", "--model", "builtin:nuclei-2d", "--image", str(d / "img.tif"), "--out",
                 str(d / "p.tif"), "--diameter", "400", "--threads", "1", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "far outside" in err and "12-60 px" in err
    assert tifffile.imread(d / "p.tif").shape == truth.shape  # the result comes back at the image's size


def test_unknown_builtin_names_the_builtins(nuclei, capsys):
    d, _ = nuclei
    assert main(["predict", "--model", "builtin:nucleii", "--image", str(d / "img.tif"), "--out",
                 str(d / "p.tif")]) != 0
    err = capsys.readouterr().err
    assert "unknown built-in model 'nucleii'" in err and "builtin:nuclei-2d" in err


def test_train_starts_from_a_builtin(nuclei, capsys):
    d, _ = nuclei
    assert main(["train", "--image", str(d / "img.tif"), "--labels", str(d / "lbl.tif"), "--out",
                 str(d / "ft.pt"), "--start-from", "builtin:nuclei-2d", "--epochs", "1", "--steps-per-epoch", "2",
                 "--threads", "1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["info", "--model", str(d / "ft.pt")]) == 0
    card = json.loads(capsys.readouterr().out)
    builtin = read_card("builtin:nuclei-2d")
    assert card["model"]["config"] == builtin.model_config  # the built-in's architecture, its weights the start
    assert card["training"]["steps"] == builtin.steps + 2  # step numbers continue from the built-in's


def test_info_lists_the_builtins_with_their_cards(capsys):
    assert main(["info", "--builtin"]) == 0
    listing = json.loads(capsys.readouterr().out)
    entry = listing["builtin:nuclei-2d"]
    assert entry["installed"] is True
    assert entry["card"]["real_images"] == 0
    assert entry["card"]["generator"]["version"]
    assert entry["card"]["rebuild"] == "python -m napari_bioimg.zoo build nuclei-2d"
    assert set(listing) >= {"builtin:nuclei-2d", "builtin:nuclei-3d", "builtin:denoise-2d"}
    assert np.isfinite(entry["card"]["scores"]["sim_f1@0.5"])


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf", "abc", "1e12"])
def test_a_bad_object_diameter_is_refused_naming_the_flag(value, capsys, tmp_path):
    from napari_bioimg.cli import main

    out = tmp_path / "out.tif"
    assert main(["predict", "--model", "builtin:nuclei-2d", "--image", str(tmp_path / "x.tif"), "--out", str(out),
                 "--diameter", value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--diameter" in err[0] and not out.exists()
