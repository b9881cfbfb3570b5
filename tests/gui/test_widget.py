"""GUI tier: a real napari viewer, the real dock widget, real background workers."""

import gc

import numpy as np

from napari_bioimg._layers import is_ours
from napari_bioimg.core import TrainConfig, train_sync
from napari_bioimg.core.checkpoint import save_checkpoint

from .conftest import fast_settings, snapshot, wait_idle


def ours(viewer):
    return [layer for layer in viewer.layers if is_ours(layer)]


def test_first_minute_journey(widget, qtbot, tmp_path):
    """Open sample -> layers preselected -> Train -> live preview -> final prediction -> Save."""
    viewer = widget.viewer
    viewer.open_sample("napari-bioimg", "nuclei")
    assert widget.image.value is viewer.layers["nuclei"]
    assert widget.annotations.value is viewer.layers["nuclei labels"]
    before = snapshot(viewer)
    fast_settings(widget, epochs=3)
    widget.preview.value = True
    widget.train_btn.native.click()
    assert widget.busy and widget.stop_btn.enabled and not widget.progress.isHidden()
    assert widget.progress._activity is not None  # also in napari's activity dock
    # the result layer is added at once (adding a layer costs napari ~0.1 s: not in the middle of training)
    (placeholder,) = ours(viewer)
    assert not placeholder.data.any()
    qtbot.waitUntil(lambda: placeholder.data.any(), timeout=60_000)  # live preview appeared mid-training
    assert widget._train_worker is not None
    assert gc.get_freeze_count() > 0  # old objects are out of the collector's way while training runs
    wait_idle(qtbot, widget)
    assert gc.get_freeze_count() == 0 and widget.progress.isHidden() and widget.progress._activity is None
    (result,) = ours(viewer)
    assert result.name == "nuclei [unet]"
    assert result.__class__.__name__ == "Labels" and result.data.shape == (256, 256)
    n_objects = len(np.unique(result.data)) - 1
    assert n_objects >= 5, n_objects
    np.testing.assert_array_equal(result.scale, viewer.layers["nuclei"].scale)
    assert len(widget.plot.losses) > 5 and widget.plot.val_scores
    for name, data in before.items():  # the user's layers are untouched
        np.testing.assert_array_equal(viewer.layers[name].data, data)
    viewer.screenshot(str(tmp_path / "window.png"), canvas_only=False)
    path = widget.save_model(tmp_path / "nuclei")
    assert path.exists() and path.suffix == ".pt"


def test_stop_mid_training_keeps_model(widget, qtbot):
    viewer = widget.viewer
    viewer.open_sample("napari-bioimg", "nuclei")
    fast_settings(widget, seconds=600)
    widget.preview.value = False
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 3, timeout=60_000)
    widget.stop_btn.native.click()
    qtbot.waitUntil(lambda: widget._train_worker is None, timeout=15_000)
    assert widget._checkpoint is not None and widget._checkpoint["training"]["stopped_early"]
    assert "stopped" in widget.status.value or "Predict" in widget.status.value or "objects" in widget.status.value
    wait_idle(qtbot, widget)


def test_semantic_scribbles_journey(widget, qtbot):
    viewer = widget.viewer
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    blobs = ((yy % 40 - 20) ** 2 + (xx % 40 - 20) ** 2 < 100).astype(float)
    viewer.add_image(blobs * 100 + rng.normal(0, 10, blobs.shape), name="cells")
    scribbles = viewer.add_labels(np.zeros((128, 128), np.uint8), name="scribbles")
    scribbles.data[2:5, 2:120] = 1
    scribbles.data[18:22, 18:22] = 2
    scribbles.data[58:62, 58:62] = 2
    painted = scribbles.data.copy()
    widget.task.value = "semantic"
    assert widget.annotations.value is scribbles
    fast_settings(widget, epochs=2)
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    assert set(np.unique(result.data)) <= {1, 2}
    agree = np.mean((result.data == 2) == (blobs > 0))
    assert agree > 0.8, agree
    np.testing.assert_array_equal(scribbles.data, painted)


def test_bad_input_shows_error_and_keeps_layers(widget, qtbot):
    viewer = widget.viewer
    viewer.add_image(np.random.default_rng(0).normal(size=(64, 64)), name="img")
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="empty")
    before = snapshot(viewer)
    fast_settings(widget)
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    assert widget.status.value.startswith("Error:") and "no objects" in widget.status.value
    assert not ours(viewer)
    for name, data in before.items():
        np.testing.assert_array_equal(viewer.layers[name].data, data)
    assert widget.train_btn.enabled and not widget.stop_btn.enabled


def test_failed_training_removes_its_empty_result_layer(widget, qtbot):
    """With live preview on, the result layer added at Train goes away again when training fails."""
    viewer = widget.viewer
    viewer.add_image(np.random.default_rng(0).normal(size=(64, 64)), name="img")
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="empty")
    fast_settings(widget)
    widget.preview.value = True
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    assert widget.status.value.startswith("Error:")
    assert not ours(viewer) and [layer.name for layer in viewer.layers] == ["img", "empty"]
    assert gc.get_freeze_count() == 0


def test_load_model_and_predict_any_image(widget, qtbot, tmp_path, blobs2d):
    image, labels = blobs2d
    res = train_sync(image, labels, TrainConfig(epochs=3, time_limit=None, steps_per_epoch=10, batch_size=4,
                                                patch_size=48, learning_rate=5e-3, preview_every=0,
                                                model_config={"depth": 2, "base_channels": 16}))
    path = save_checkpoint(res.checkpoint, tmp_path / "m.pt")
    viewer = widget.viewer
    viewer.add_image(image, name="blobs", scale=(0.5, 0.5))
    widget.load_model(path)
    assert widget.predict_btn.enabled
    widget.predict_btn.native.click()
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    assert result.data.max() >= 3
    np.testing.assert_array_equal(result.scale, (0.5, 0.5))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    widget.load_model(bad)
    assert "Error" in widget.status.value and widget._checkpoint is not None


def test_closing_viewer_during_training_ends_worker(make_napari_viewer, qtbot):
    from napari_bioimg._widget import BioimgWidget

    viewer = make_napari_viewer()
    w = BioimgWidget(viewer)
    viewer.window.add_dock_widget(w)
    viewer.add_image(np.random.default_rng(0).normal(size=(64, 64)), name="img")
    lbl = np.zeros((64, 64), np.uint8)
    lbl[10:30, 10:30] = 1
    viewer.add_labels(lbl, name="lbl")
    fast_settings(w, seconds=600)
    w.train_btn.native.click()
    qtbot.waitUntil(lambda: len(w.plot.losses) >= 2, timeout=60_000)
    worker = w._train_worker
    w._shutdown()
    qtbot.waitUntil(lambda: not worker.is_running, timeout=15_000)


def test_3d_stack_trains_volumetric_and_predicts_volume(widget, qtbot):
    viewer = widget.viewer
    viewer.open_sample("napari-bioimg", "nuclei_3d")
    assert widget.axes.value == "ZYX"
    fast_settings(widget, seconds=600)
    widget.patch.value = 32
    widget.batch.value = 2
    widget.base_channels.value = 8
    widget.preview.value = False
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 3, timeout=60_000)
    assert widget._run["spatial_dims"] == 3
    widget.stop_btn.native.click()
    wait_idle(qtbot, widget, timeout=180_000)
    (result,) = ours(viewer)
    assert result.data.shape == viewer.layers["nuclei 3D"].data.shape
    assert widget._checkpoint["data"]["spatial_dims"] == 3
