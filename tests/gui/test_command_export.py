"""*Export training command…*: the widget's settings and Training data as the command line and a SLURM script."""

import csv
import os
import shlex
import subprocess

import numpy as np
import tifffile

from napari_bioimg.cli import main
from napari_bioimg.core.formats.checkpoint import ModelCard, load_checkpoint

from .conftest import choose_file, fast_settings, same, snapshot


def command_of(script):
    """The napari-bioimg command a written script runs (its continuation lines joined)."""
    text = script.read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if "napari_bioimg.cli" in line or line.startswith("napari-bioimg"))
    return shlex.split(line)


def test_export_writes_the_command_that_trains_what_the_form_says(viewer, widget, qtbot, monkeypatch, tmp_path):
    viewer.open_sample("napari-bioimg", "nuclei")
    image, labels = viewer.layers["nuclei"], viewer.layers["nuclei labels"]
    viewer.add_image(np.array(image.data[40:200, 20:230]), name="crop")
    viewer.add_labels(np.array(labels.data[40:200, 20:230]), name="crop_mask")
    before = snapshot(viewer)
    w = widget
    w.data.match_btn.native.click()
    w.data.list.item(1).setSelected(True)
    w.data.val_btn.native.click()  # the crop validates, whole
    fast_settings(w, seconds=3)
    choose_file(monkeypatch, "getSaveFileName", tmp_path / "run" / "train.sh")
    os.makedirs(tmp_path / "run")
    w.command.btn.native.click()

    run = tmp_path / "run"
    assert w.status.value.startswith(f"Wrote train.sh, train.slurm and train_data/ in {run}")
    with open(run / "train_data" / "pairs.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["labels"], r["split"]) for r in rows] == [("nuclei_labels.tif", ""), ("crop_mask.tif", "val")]
    assert np.array_equal(tifffile.imread(run / "train_data" / rows[1]["labels"]), before["crop_mask"])
    assert snapshot(viewer).keys() == before.keys()
    assert all(np.array_equal(v, before[k]) for k, v in snapshot(viewer).items())  # the user's layers untouched
    assert same(w.form.image.value, image)

    local = command_of(run / "train.sh")
    assert local[:2] == ["napari-bioimg", "train"]
    cluster = command_of(run / "train.slurm")
    assert cluster[cluster.index("-m"):cluster.index("--device")] == \
        ["-m", "napari_bioimg.cli", *local[1:local.index("--device")]]  # the same training, under torchrun
    assert "--nproc-per-node" in cluster and cluster[-2:] == ["--device", "cuda"]
    for script in ("train.sh", "train.slurm"):
        assert subprocess.run(["bash", "-n", str(run / script)]).returncode == 0

    monkeypatch.chdir(run)  # the command as the user runs it, from its folder
    assert main([*local[1:], "--quiet"]) == 0
    card = ModelCard.of(load_checkpoint(run / "train_model.pt"))
    expected = w.form.config()
    for field in ("task", "model", "batch_size", "learning_rate", "time_limit", "val_fraction", "seed"):
        assert card.train_config[field] == getattr(expected, field), field
    assert card.train_config["patch_size"] in ([expected.patch_size], expected.patch_size)  # --patch-size 64
    assert card.model_config["depth"] == 2 and card.model_config["base_channels"] == 16
    assert load_checkpoint(run / "train_model.pt")["training"]["data"].startswith("2 image(s)")
    assert card.validation_size is not None  # validated on the held-out crop, as in the widget


def test_export_without_data_says_what_to_pick(viewer, widget, monkeypatch, tmp_path):
    choose_file(monkeypatch, "getSaveFileName", tmp_path / "train.sh")
    widget.command.btn.native.click()
    assert "nothing to export: pick an image and its annotations" in widget.status.value
    assert list(tmp_path.iterdir()) == []
    widget.form.task.value = "classify"
    widget.command.btn.native.click()
    assert "for 'classify' give --classes / --target on the command line" in widget.status.value
    assert list(tmp_path.iterdir()) == []
