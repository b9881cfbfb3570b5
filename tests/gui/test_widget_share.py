"""GUI tier for human-in-the-loop training and sharing: Pause/Resume, Continue, Export…, Load… (bioimage.io)."""

import time
import zipfile

import numpy as np
import pytest
import yaml

from napari_bioimg.core import TrainConfig, predict_sync, train_sync
from napari_bioimg.core.formats.checkpoint import save_checkpoint

from .conftest import choose_file, fast_settings, open_widget, ours, settle, snapshot, wait_idle


def test_pause_holds_the_time_budget(viewer, widget, qtbot):
    viewer.open_sample("napari-bioimg", "nuclei")
    fast_settings(widget, seconds=5)
    widget.form.preview.value = False
    assert not widget.pause_btn.enabled
    start = time.perf_counter()
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 2, timeout=60_000)
    assert widget.pause_btn.enabled
    widget.pause_btn.native.click()
    qtbot.waitUntil(lambda: widget.pause_btn.text == "Resume", timeout=30_000)
    assert widget.session.worker("train").is_paused and "Paused" in widget.status.value
    n = len(widget.plot.losses)
    # the pause itself is what is tested: held for 4 s (most of the 5 s budget), measured on the clock
    paused_at = time.perf_counter()
    qtbot.waitUntil(lambda: time.perf_counter() - paused_at >= 4, timeout=30_000)
    settle()  # a step the worker made while paused would have arrived now
    assert len(widget.plot.losses) == n and widget.session.worker("train").is_paused
    widget.pause_btn.native.click()
    qtbot.waitUntil(lambda: widget.pause_btn.text == "Pause", timeout=30_000)
    qtbot.waitUntil(lambda: widget.session.worker("train") is None, timeout=120_000)
    wall = time.perf_counter() - start
    training = widget.session.model.checkpoint["training"]
    assert not training["stopped_early"] and training["steps"] > n
    # the model is ready within the 5 s budget, its end (validation, calibration) included, and used most of it...
    assert 3 <= training["seconds"] <= 5 * 1.02 + 0.3
    assert wall - training["seconds"] > 3.5  # ...which counts training, not the 4 s spent paused
    wait_idle(qtbot, widget)


def test_stop_while_paused_keeps_the_model(viewer, widget, qtbot):
    viewer.open_sample("napari-bioimg", "nuclei")
    fast_settings(widget, seconds=600)
    widget.form.preview.value = False
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 2, timeout=60_000)
    widget.pause_btn.native.click()
    qtbot.waitUntil(lambda: widget.pause_btn.text == "Resume", timeout=30_000)
    widget.stop_btn.native.click()
    qtbot.waitUntil(lambda: widget.session.worker("train") is None, timeout=30_000)
    assert widget.session.model.checkpoint["training"]["stopped_early"] and widget.pause_btn.text == "Pause"
    wait_idle(qtbot, widget)


def test_continue_training_on_corrected_annotations(viewer, widget, qtbot):
    """Predict -> the user corrects the annotations -> Continue: fine-tuning, with the loss curve continuing."""
    viewer.open_sample("napari-bioimg", "nuclei")
    fast_settings(widget, seconds=4)
    widget.form.preview.value = False
    assert not widget.continue_btn.enabled
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    first = widget.session.model.checkpoint["training"]["steps"]
    assert widget.continue_btn.enabled and len(widget.plot.steps) == first
    labels = viewer.layers["nuclei labels"]
    corrected = labels.data.copy()
    corrected[corrected == corrected.max()] = 0  # the user erases an object
    labels.data = corrected
    before = snapshot(viewer)
    widget.form.depth.value = 4  # ignored: fine-tuning keeps the model's architecture
    widget.continue_btn.native.click()
    assert "Continuing" in widget.status.value
    wait_idle(qtbot, widget)
    ck = widget.session.model.checkpoint
    assert ck["training"]["steps"] > first and not ck["training"]["stopped_early"]
    assert [h["step"] for h in ck["history"]] == list(range(1, ck["training"]["steps"] + 1))
    assert widget.plot.steps == list(range(1, ck["training"]["steps"] + 1))  # one continuous curve
    assert ck["model"]["config"]["depth"] == 2
    for name, data in before.items():
        if name in viewer.layers and not any(layer.name == name for layer in ours(viewer)):
            np.testing.assert_array_equal(viewer.layers[name].data, data)


@pytest.fixture
def trained_file(tmp_path, blobs2d):
    image, labels = blobs2d
    res = train_sync(image, labels, TrainConfig(epochs=2, time_limit=None, steps_per_epoch=10, batch_size=4,
                                                patch_size=48, learning_rate=5e-3, preview_every=0,
                                                model_config={"depth": 2, "base_channels": 8}))
    return save_checkpoint(res.checkpoint, tmp_path / "m.pt")


def test_export_dialog_then_load_package_predicts_the_same(viewer, widget, qtbot, tmp_path, blobs2d, trained_file,
                                                           monkeypatch, make_napari_viewer):
    image, _ = blobs2d
    viewer.add_image(image, name="blobs")
    choose_file(monkeypatch, "getOpenFileName", trained_file)
    widget.files.load_btn.native.click()
    assert widget.files.export_btn.enabled
    target = tmp_path / "shared" / "model"
    choose_file(monkeypatch, "getSaveFileName", target, "bioimage.io package (*.zip)")
    widget.files.export_btn.native.click()
    wait_idle(qtbot, widget)
    package = target.with_suffix(".zip")
    assert package.exists() and "Exported" in widget.status.value
    with zipfile.ZipFile(package) as z:
        assert z.read("test_input.npy")  # the test tensors come from the image in the viewer

    # a colleague opens the package in a fresh napari window
    colleague = make_napari_viewer()
    theirs = open_widget(colleague)
    colleague.add_image(image, name="blobs")
    choose_file(monkeypatch, "getOpenFileName", package)
    theirs.files.load_btn.native.click()
    assert "Loaded model.zip" in theirs.status.value and theirs.session.trainable
    theirs.predict_btn.native.click()
    wait_idle(qtbot, theirs)
    (result,) = ours(colleague)
    np.testing.assert_array_equal(result.data, predict_sync(str(trained_file), image))


def test_load_other_tools_package_predicts_an_image(viewer, widget, qtbot, tmp_path, blobs2d, trained_file,
                                                    monkeypatch):
    """A package without napari-bioimg metadata: its output channels become a float image layer."""
    image, _ = blobs2d
    choose_file(monkeypatch, "getOpenFileName", trained_file)
    widget.files.load_btn.native.click()
    choose_file(monkeypatch, "getSaveFileName", tmp_path / "ours.zip", "bioimage.io package (*.zip)")
    widget.files.export_btn.native.click()
    wait_idle(qtbot, widget)
    folder = tmp_path / "foreign"
    with zipfile.ZipFile(tmp_path / "ours.zip") as z:
        z.extractall(folder)
    rdf = yaml.safe_load((folder / "rdf.yaml").read_text())
    rdf["config"] = {}
    rdf["weights"] = {"torchscript": {k: v for k, v in rdf["weights"]["torchscript"].items() if k != "parent"}}
    (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf))
    viewer.add_image(image, name="blobs")
    choose_file(monkeypatch, "getOpenFileName", folder / "rdf.yaml")
    widget.files.load_btn.native.click()
    assert "3 channel(s)" in widget.status.value
    assert not widget.continue_btn.enabled and not widget.files.export_btn.enabled and widget.predict_btn.enabled
    widget.predict_btn.native.click()
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    assert result.__class__.__name__ == "Image" and result.data.shape == (3, *image.shape)
    np.testing.assert_allclose(result.data.sum(axis=0), 1.0, atol=1e-4)  # class probabilities
