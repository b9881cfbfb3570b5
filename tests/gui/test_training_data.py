"""The Training data list and Predict several, in the real window through the plugin path."""

import numpy as np
import tifffile

from .conftest import fast_settings, ours, wait_idle


def _two_pairs(viewer):
    """The 2D nuclei sample and a smaller crop of it with its labels: two pairs of different sizes."""
    viewer.open_sample("napari-bioimg", "nuclei")
    image, labels = viewer.layers["nuclei"], viewer.layers["nuclei labels"]
    viewer.add_image(np.array(image.data[40:200, 20:230]), name="crop")
    viewer.add_labels(np.array(labels.data[40:200, 20:230]), name="crop_mask")
    return image, labels


def test_training_on_listed_pairs_then_each_image_gets_its_result(viewer, widget, qtbot):
    _two_pairs(viewer)
    w = widget
    w.data.match_btn.native.click()
    assert [w.data.describe(p) for p in w.data.pairs] == ["nuclei  ←  nuclei labels", "crop  ←  crop_mask"]
    assert "Train on the 2 pair(s)" in w.status.value
    w.data.list.item(1).setSelected(True)
    w.data.val_btn.native.click()  # the crop validates, whole
    assert w.data.pairs[1].split == "val" and w.data.describe(w.data.pairs[1]).endswith("[validation]")
    fast_settings(w, epochs=1)
    w.train_btn.native.click()
    assert "on 2 images" in w.status.value
    wait_idle(qtbot, w, timeout=240_000)
    qtbot.waitUntil(lambda: len(ours(viewer)) == 2 and not w.busy, timeout=120_000)
    names = sorted(layer.name for layer in ours(viewer))
    assert names == ["crop [unet]", "nuclei [unet]"]
    assert viewer.layers["crop [unet]"].data.shape == (160, 210)
    assert w.session.model.card.validation_size is not None  # validated on the held-out crop
    assert "Predicted 2 image(s)" in w.status.value
    assert "Training finished" in w.status.value  # the training's summary stays above the predictions


def test_predict_several_selected_layers_and_stop(viewer, widget, qtbot, blob_model):
    w = widget
    image, _ = _two_pairs(viewer)
    w.session.set_model(blob_model)
    viewer.layers.selection = {image, viewer.layers["crop"]}
    w.several_btn.native.click()
    wait_idle(qtbot, w)
    assert sorted(layer.name for layer in ours(viewer)) == ["crop [unet]", "nuclei [unet]"]
    for layer in ours(viewer):  # each aligned with its own image
        assert layer.data.shape == viewer.layers[layer.metadata["source"]].data.shape
    # Stop: the image being predicted is cancelled, the rest skipped; nothing half-written stays
    for k in range(3):
        viewer.add_image(np.tile(image.data, (4, 4)), name=f"big{k}")
    viewer.layers.selection = {viewer.layers[f"big{k}"] for k in range(3)}
    w.several_btn.native.click()
    qtbot.waitUntil(lambda: w.progress.value() > 0 or not w.busy, timeout=60_000)
    w.stop_btn.native.click()
    wait_idle(qtbot, w)
    assert len([layer for layer in ours(viewer) if layer.name.startswith("big")]) < 3
    assert "stopped" in w.status.value or "cancelled" in w.status.value


def test_pairs_from_a_folder_and_removing(viewer, widget, qtbot, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for name, shape in (("a", (64, 80)), ("b", (90, 70))):
        lbl = np.zeros(shape, np.uint16)
        lbl[10:30, 10:30], lbl[40:60, 30:50] = 1, 2
        tifffile.imwrite(tmp_path / f"{name}.tif", (lbl > 0) * 200 + rng.normal(50, 10, shape).astype(np.float32))
        tifffile.imwrite(tmp_path / f"{name}_mask.tif", lbl)
    w = widget
    viewer.open_sample("napari-bioimg", "nuclei")
    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getExistingDirectory", lambda *a, **k: str(tmp_path))
    w.data.folder_btn.native.click()
    assert [w.data.describe(p) for p in w.data.pairs] == ["a.tif  ←  a_mask.tif", "b.tif  ←  b_mask.tif"]
    w.data.add_btn.native.click()  # the picked image and its annotations
    assert w.data.describe(w.data.pairs[-1]) == "nuclei  ←  nuclei labels"
    viewer.layers.remove("nuclei labels")  # a closed layer leaves its row without annotations
    assert w.data.describe(w.data.pairs[-1]) == "nuclei  (no annotations)"
    w.data.list.item(2).setSelected(True)
    w.data.remove_btn.native.click()
    assert len(w.data.pairs) == 2
    fast_settings(w, epochs=1)
    w.train_btn.native.click()
    wait_idle(qtbot, w, timeout=240_000)
    assert w.session.model is not None and "2 image(s) (2 annotated)" in w.session.model.checkpoint[
        "training"]["data"]
    assert not ours(viewer)  # files on disk: no layer to put a result beside
