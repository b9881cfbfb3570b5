"""Issue 16: the journeys in the real window — each test walks a microscopist's steps through the plugin path."""

import time
from pathlib import Path

import numpy as np
import pytest
from napari.utils.notifications import NotificationSeverity, notification_manager
from qtpy.QtCore import QThreadPool
from qtpy.QtWidgets import QDockWidget

from .conftest import choose_file, fast_settings, open_widget, ours, same, settle, wait_idle


@pytest.fixture
def notes():
    """napari notifications shown during the test (warnings and errors)."""
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    yield seen
    notification_manager.notification_ready.disconnect(seen.append)


def _severe(notes):
    return [n.message for n in notes if n.severity >= NotificationSeverity.ERROR]


def _recorder(widget):
    """Every text the status line shows from now on."""
    seen = []
    widget.status.changed.connect(seen.append)
    return seen


# ---------------------------------------------------------------- 1. classify: the model field stays


def _mark_nuclei(viewer, per_class=5):
    """A Points layer with a 'class' per point on a few nuclei: big or small."""
    labels = viewer.layers["nuclei labels"].data
    ids, areas = np.unique(labels[labels > 0], return_counts=True)
    median = np.median(areas)
    picked = {"big": [i for i, a in zip(ids, areas) if a > median][:per_class],
              "small": [i for i, a in zip(ids, areas) if a <= median][:per_class]}
    centres, classes = [], []
    for name, chosen in picked.items():
        for i in chosen:
            yx = np.argwhere(labels == i)
            centres.append(yx[np.argmin(((yx - yx.mean(0)) ** 2).sum(1))])  # a pixel of the object
            classes.append(name)
    return viewer.add_points(np.array(centres), name="marks", features={"class": classes})


def test_classify_model_stays_when_layers_change(viewer, widget, qtbot):
    """Nuclei 2D -> Classify objects -> add a Points layer -> Model still cnn -> Train -> Continue."""
    viewer.open_sample("napari-bioimg", "nuclei")
    widget.form.task.value = "classify"
    assert widget.form.model.value == "cnn"
    _mark_nuclei(viewer)
    assert widget.form.model.value == "cnn"  # napari reset the choices on the new layer: the value stayed
    assert same(widget.form.classes.value, viewer.layers["marks"])
    widget.form.epochs.value = 1
    widget.form.batch.value = 16
    widget.form.base_channels.value = 8
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    assert widget.form.model.value == "cnn" and widget.session.model.card.model == "cnn"
    (result,) = ours(viewer)
    assert set(result.features["class"]) <= {"big", "small"}
    widget.continue_btn.native.click()
    assert "Continuing" in widget.status.value
    wait_idle(qtbot, widget)
    assert widget.session.model.card.steps == 100 and widget.form.model.value == "cnn"
    assert [layer.name for layer in ours(viewer)] == [result.name]


def test_classify_result_has_a_colour_legend(viewer, widget, qtbot):
    viewer.open_sample("napari-bioimg", "nuclei")
    widget.form.task.value = "classify"
    _mark_nuclei(viewer)
    widget.form.epochs.value = 1
    widget.form.base_channels.value = 8
    assert widget.legend.isHidden()
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    assert not widget.legend.isHidden() and result.name in widget.legend.text()
    names = [name for name, _, _ in widget.legend.entries]
    assert sorted(names) == ["big", "small"]
    for name, colour, count in widget.legend.entries:  # the legend's colour is the objects' colour
        ids = [i for i, c in zip(result.features["index"], result.features["class"]) if c == name]
        assert count == len(ids)
        if ids:
            rgba = np.round(result.colormap.map(ids[0]), 3)
            expected = np.round([int(colour[k:k + 2], 16) / 255 for k in (1, 3, 5)], 3)
            np.testing.assert_allclose(rgba[:3], expected, atol=0.01)


# ---------------------------------------------------------------- 3. painting after Train


def test_painting_after_train_goes_into_the_annotations(viewer, widget, qtbot):
    """Train adds '<image> [unet]'; the brush still paints into the user's labels, and the result is read-only."""
    viewer.open_sample("napari-bioimg", "nuclei")
    labels = viewer.layers["nuclei labels"]
    viewer.layers.selection.active = labels
    fast_settings(widget, seconds=600)
    widget.form.preview.value = True
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: bool(ours(viewer)), timeout=60_000)
    (result,) = ours(viewer)
    assert same(viewer.layers.selection.active, labels)  # the new layer did not take the selection
    assert not result.editable  # the next preview would overwrite any stroke in it
    qtbot.waitUntil(lambda: result.data.any(), timeout=60_000)  # a preview was written...
    assert same(viewer.layers.selection.active, labels) and not result.editable  # ...and nothing changed
    before = labels.data.copy()
    viewer.layers.selection.active.paint((5, 5), 7)  # the user's next brush stroke
    assert (labels.data != before).any()
    widget.stop_btn.native.click()
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    assert result.editable and same(viewer.layers.selection.active, labels)


# ---------------------------------------------------------------- 4. scribbles task on instance masks


def test_scribbles_task_does_not_take_instance_masks_silently(viewer, widget, qtbot, notes):
    viewer.open_sample("napari-bioimg", "nuclei")
    masks = viewer.layers["nuclei labels"]
    assert same(widget.form.annotations.value, masks)
    widget.form.task.value = "semantic"
    assert widget.form.annotations.value is None  # not re-used silently for a scribbles task
    assert "looks like instance masks" in widget.status.value and "paint a few strokes" in widget.status.value
    widget.train_btn.native.click()
    assert not widget.busy and widget.status.value.startswith("Error: pick a Labels layer")
    assert not ours(viewer)
    widget.form.annotations.value = masks  # on purpose: a question first, not 20 junk classes
    fast_settings(widget, epochs=1)
    widget.train_btn.native.click()
    assert not widget.busy and "looks like instance masks" in widget.status.value
    assert widget.train_btn.text == "Train anyway"
    assert any("looks like instance masks" in n.message for n in notes)
    widget.train_btn.native.click()  # the second press trains
    assert widget.busy
    wait_idle(qtbot, widget)
    assert widget.session.model.card.task == "semantic" and widget.train_btn.text == "Train"
    widget.form.task.value = "instance"
    assert same(widget.form.annotations.value, masks)
    widget.form.task.value = "semantic"
    scribbles = viewer.add_labels(np.zeros_like(masks.data), name="scribbles")
    assert same(widget.form.annotations.value, scribbles)  # a fresh layer to paint in is picked


# ---------------------------------------------------------------- 6. closing the window while training


@pytest.mark.parametrize("sample", ["nuclei", "nuclei_3d"])
def test_closing_during_training_is_quiet_and_prompt(make_napari_viewer, qtbot, notes, sample):
    """Default settings (the 3D sample makes steps and previews of many seconds): the worker is gone in 2 s."""
    viewer = make_napari_viewer()
    w = open_widget(viewer)
    viewer.open_sample("napari-bioimg", sample)
    w.train_btn.native.click()
    # in the middle of a step: 2D, once steps are being made; 3D, as soon as training started (the first
    # step takes seconds)
    qtbot.waitUntil(lambda: w.session.run.started is not None and (sample == "nuclei_3d" or w.session.run.last),
                    timeout=60_000)
    worker = w.session.worker("train")
    assert worker is not None and worker.is_running, w.status.value
    start = time.perf_counter()
    viewer.close()  # what the window's close button does
    qtbot.waitUntil(lambda: not worker.is_running and QThreadPool.globalInstance().activeThreadCount() == 0,
                    timeout=2_000)
    assert time.perf_counter() - start < 2
    settle()  # anything still queued for the widget arrives now
    assert not _severe(notes) and not w.session.busy


# ---------------------------------------------------------------- 7. big results: where, save, clean up


def _big_layer(viewer, blob_field, tmp_path):
    import dask.array as da
    import zarr

    image, _ = blob_field
    store = zarr.create_array(store=str(tmp_path / "big.zarr"), shape=image.shape, chunks=(64, 64), dtype="float32")
    store[...] = image
    return viewer.add_image(da.from_zarr(store), name="big", scale=(2.0, 2.0))


def _predict_big(widget, qtbot):
    widget.predict_btn.native.click()
    wait_idle(qtbot, widget)
    (layer,) = [lay for lay in ours(widget.viewer) if widget.results.store_of(lay) is not None]
    return layer, widget.results.store_of(layer)


def test_big_result_location_save_and_cleanup(viewer, widget, qtbot, tmp_path, blob_model, blob_field,
                                              monkeypatch):
    import zarr

    from napari_bioimg.core.data.zarrio import store_location
    from napari_bioimg.core.formats.checkpoint import save_checkpoint

    _big_layer(viewer, blob_field, tmp_path)
    choose_file(monkeypatch, "getOpenFileName", save_checkpoint(blob_model, tmp_path / "m.pt"))
    widget.files.load_btn.native.click()
    texts = _recorder(widget)
    layer, store = _predict_big(widget, qtbot)
    assert store.exists() and str(store) in widget.status.value and "Save result as OME-Zarr" in widget.status.value
    assert any("ETA" in t and "--:--" not in t for t in texts), texts  # a time left while it ran
    assert not widget.files.save_result_btn.native.isHidden()
    choose_file(monkeypatch, "getSaveFileName", tmp_path / "out" / "nuclei result")
    widget.files.save_result_btn.native.click()
    wait_idle(qtbot, widget)
    saved = tmp_path / "out" / "nuclei result.ome.zarr"
    group = zarr.open_group(str(saved), mode="r")
    assert group.attrs["multiscales"][0]["axes"][-1]["name"] == "x"
    np.testing.assert_array_equal(group["0"][...], np.asarray(layer.data))
    assert Path(store_location(layer.data)).parent == saved and not store.exists()  # moved, not duplicated
    assert widget.files.save_result_btn.native.isHidden() and "Saved the result" in widget.status.value
    # another prediction: its store goes with its layer
    viewer.layers.remove(layer)
    layer, store = _predict_big(widget, qtbot)
    viewer.layers.remove(layer)
    assert not store.exists()
    # and with the window
    layer, store = _predict_big(widget, qtbot)
    viewer.close()
    assert not store.exists()


# ---------------------------------------------------------------- 8. how much the validation numbers rest on


def test_validation_size_and_caveat_are_shown(viewer, widget, qtbot):
    """A 256 x 256 image, 15 % held apart: the scores rest on a few nuclei, and the widget says so."""
    viewer.open_sample("napari-bioimg", "nuclei")
    fast_settings(widget, epochs=1)
    status = _recorder(widget)
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    assert "objects" in widget.plot.val_name  # the curve says what it rests on: the engine counts true objects
    assert any("validation on" in t for t in status)  # said as training starts
    finished = next(t for t in status if t.startswith("Training finished"))
    assert "validated on" in finished and "objects" in finished and "Caution: too small a validation set" in finished


def test_validation_note_uses_the_engines_size_when_given():
    from types import SimpleNamespace

    from napari_bioimg._qt.prose import validation_note

    started = SimpleNamespace(n_val_pixels=9000, unit="pixels")
    run = SimpleNamespace(val=SimpleNamespace(size=12, unit="objects", report=None), started=started)
    text, caveat = validation_note(run)
    assert text == "on 12 objects" and caveat.startswith("too small a validation set")
    run = SimpleNamespace(val=SimpleNamespace(size=500, unit="objects", report=None), started=started)
    assert validation_note(run) == ("on 500 objects", None)
    run = SimpleNamespace(val=None, started=started)
    assert validation_note(run)[0] == "on 9,000 pixels"


# ---------------------------------------------------------------- 9. the dock in a real window


def test_dock_fits_a_1000_px_screen_and_explains_itself(viewer, widget, qtbot):
    from napari_bioimg._qt.guidance import TASKS

    viewer.open_sample("napari-bioimg", "nuclei")
    assert not widget.status.value.lower().startswith("pick")  # the layers are picked: say what comes next
    assert widget.status.value.startswith("Ready")
    assert not widget.predict_btn.enabled and "Train a model or Load one" in widget.predict_btn.tooltip
    for label, text in TASKS.values():  # every task explained
        assert label in widget.form.task.tooltip and text in widget.form.task.tooltip
    combo = widget.form.task.native
    assert all(combo.itemData(i, 3) for i in range(combo.count()))  # and on each item (3: ToolTipRole)
    widget.form.collapsible.expand(animate=False)
    viewer.window._qt_window.resize(1400, 1000)
    with qtbot.waitExposed(viewer.window._qt_window):
        viewer.window.show()
    screen = viewer.window._qt_window.screen().availableGeometry().height()
    assert widget.minimumSizeHint().height() < 600
    assert viewer.window._qt_window.frameGeometry().height() <= screen
    dock = widget.parent()
    while not isinstance(dock, QDockWidget):
        dock = dock.parent()
    title = dock.titleBarWidget().title  # napari's dock title: not cut off
    assert title.width() >= title.fontMetrics().horizontalAdvance(title.text())
    fast_settings(widget, seconds=3)
    texts = _recorder(widget)
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    assert any("\u00a0it/s" in t for t in texts)  # "2.1 it/s" never wraps apart
    assert widget.predict_btn.enabled and "Predict 'nuclei'" in widget.predict_btn.tooltip


# ---------------------------------------------------------------- 10. denoise


def test_denoise_fills_the_reference_and_plots_the_loss_it_names(viewer, widget, qtbot):
    viewer.open_sample("napari-bioimg", "noisy_timelapse")
    widget.form.task.value = "denoise"
    assert same(widget.form.reference.value, viewer.layers["time-lapse (clean reference)"])
    widget.form.reference.value = None  # without a reference, validation is the blind-spot loss
    fast_settings(widget, epochs=1)
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    plot = widget.plot
    assert plot.val_name.startswith("blind spot loss") and plot.val_scores[-1] > 0
    loss = widget.session.model.card.metrics["blind_spot_loss"]
    assert plot.val_label() == f"{loss:.3g}"  # the number the status shows, not the negated score
    left, right = plot.margins(plot.fontMetrics())
    assert right >= plot.fontMetrics().horizontalAdvance(plot.val_label())  # not clipped


# ---------------------------------------------------------------- smaller ones


def test_input_errors_never_add_a_layer(viewer, widget, qtbot):
    viewer.add_image(np.random.default_rng(0).normal(size=(64, 64)), name="img")
    viewer.add_labels(np.zeros((64, 40), np.uint8), name="other shape")
    assert widget.form.annotations.value is None
    assert not any(c is not None and c.name == "other shape" for c in widget.form.annotations.choices)
    added = []
    viewer.layers.events.inserted.connect(lambda e: added.append(e.value.name))
    widget.train_btn.native.click()  # no annotations: said in the status line, not only in a notification
    assert widget.status.value.startswith("Error: pick a Labels layer") and not widget.busy
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="empty")
    added.clear()
    fast_settings(widget)
    widget.form.preview.value = True
    widget.train_btn.native.click()  # refused by the engine: no objects
    wait_idle(qtbot, widget)
    assert widget.status.value.startswith("Error:") and "no objects" in widget.status.value
    # the result layer is added at the click (napari's 0.1-0.3 s there, not mid-training) and goes again
    assert added in ([], ["img [unet]"]) and not ours(viewer)
