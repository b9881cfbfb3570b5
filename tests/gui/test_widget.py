"""GUI tier: a real napari viewer, the dock widget opened from the Plugins menu, real background workers."""

import gc

import numpy as np
import pytest

from .conftest import choose_file, fast_settings, open_widget, ours, same, settle, snapshot, wait_idle


def test_first_minute_journey(viewer, widget, qtbot, tmp_path, monkeypatch):
    """Open sample -> layers preselected -> Train -> live preview -> the result layer stays -> Save."""
    viewer.open_sample("napari-bioimg", "nuclei")
    assert same(widget.form.image.value, viewer.layers["nuclei"])
    assert same(widget.form.annotations.value, viewer.layers["nuclei labels"])
    before = snapshot(viewer)
    fast_settings(widget, epochs=3)
    widget.form.preview.value = True
    steps_when_added = []
    viewer.layers.events.inserted.connect(lambda e: steps_when_added.append(len(widget.plot.losses)))
    widget.train_btn.native.click()
    assert widget.busy and widget.stop_btn.enabled and not widget.progress.isHidden()
    assert widget.progress._activity is not None  # also in napari's activity dock
    # the result layer is added as training starts (once the engine accepted the inputs), before the first step:
    # adding a layer costs napari ~0.1 s, not in the middle of training
    qtbot.waitUntil(lambda: bool(ours(viewer)), timeout=60_000)
    (placeholder,) = ours(viewer)
    assert steps_when_added == [0]
    qtbot.waitUntil(lambda: placeholder.data.any(), timeout=60_000)  # live preview appeared mid-training
    assert gc.get_freeze_count() > 0  # old objects are out of the collector's way while training runs
    wait_idle(qtbot, widget)
    assert gc.get_freeze_count() == 0 and widget.progress.isHidden() and widget.progress._activity is None
    # what the user sees at the end: the result layer is still there and holds the final prediction
    (result,) = ours(viewer)
    assert result.name == "nuclei [unet]" and result.name in widget.status.value
    assert result.__class__.__name__ == "Labels" and result.data.shape == (256, 256)
    n_objects = len(np.unique(result.data)) - 1
    assert f"{n_objects} objects" in widget.status.value
    np.testing.assert_array_equal(result.scale, viewer.layers["nuclei"].scale)
    assert len(widget.plot.losses) > 5 and widget.plot.val_scores
    for name, data in before.items():  # the user's layers are untouched
        np.testing.assert_array_equal(viewer.layers[name].data, data)
    viewer.screenshot(str(tmp_path / "window.png"), canvas_only=False)
    choose_file(monkeypatch, "getSaveFileName", tmp_path / "nuclei")
    widget.files.save_btn.native.click()
    assert (tmp_path / "nuclei.pt").exists() and "Saved model" in widget.status.value
    # whether it learnt: another slice of the stack the sample comes from (never trained on), with Predict
    from napari_bioimg._sample_data import SLICE_2D, load_nuclei_3d
    from napari_bioimg.core.metrics import matching

    stack, truth = load_nuclei_3d()
    other = viewer.add_image(stack[SLICE_2D - 4], name="another slice")
    widget.form.image.value = other
    widget.predict_btn.native.click()
    wait_idle(qtbot, widget)
    predicted = viewer.layers["another slice [unet]"].data
    n_true, n_found = len(np.unique(truth[SLICE_2D - 4])) - 1, len(np.unique(predicted)) - 1
    assert 0.7 * n_true <= n_found <= 1.2 * n_true, (n_found, n_true)  # 17-18 of 19 at seeds 0-2
    f1 = matching(truth[SLICE_2D - 4], predicted)["thresholds"]["0.5"]["f1"]
    assert f1 > 0.8, f1  # 0.94-0.97 at seeds 0-2; the untrained network 0.0


def test_stop_mid_training_keeps_model_and_result(viewer, widget, qtbot):
    viewer.open_sample("napari-bioimg", "nuclei")
    fast_settings(widget, seconds=600)
    widget.form.preview.value = True
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 3, timeout=60_000)
    widget.stop_btn.native.click()
    wait_idle(qtbot, widget)
    assert widget.session.model.checkpoint is not None and widget.session.model.checkpoint["training"]["stopped_early"]
    (result,) = ours(viewer)  # the final prediction of the model so far, kept
    assert result.name == "nuclei [unet]" and result.data.any()
    assert "object" in widget.status.value and result.name in widget.status.value


def _thread_niceness() -> dict[int, int]:
    """Each thread of this process and its niceness (Linux: /proc/self/task/TID/stat, field 19)."""
    from pathlib import Path

    out = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        out[int(task.name)] = int(fields[16])  # fields after "(comm)" start at field 3
    return out


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="reads /proc")
def test_training_runs_behind_the_viewer(viewer, widget, qtbot):
    """The training threads run at a lower CPU priority than the viewer's: where the viewer draws with the
    CPU (no GPU), training no longer takes the cores from it while the user pans and zooms."""
    import os
    import threading

    viewer.open_sample("napari-bioimg", "nuclei")
    fast_settings(widget, seconds=600)
    before = _thread_niceness()  # (some libraries' own threads already run at the lowest priority)
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 2, timeout=60_000)
    nice = _thread_niceness()
    gui = nice[threading.get_native_id()]
    behind = [tid for tid, n in nice.items() if n >= gui + 10 and before.get(tid, gui) < gui + 10]
    widget.stop_btn.native.click()
    wait_idle(qtbot, widget)
    assert gui == os.getpriority(os.PRIO_PROCESS, 0) and behind, nice  # the worker and torch's threads


def test_predict_keeps_its_result_layer(viewer, widget, qtbot, tmp_path, blob_field, blob_model, monkeypatch):
    """Load… a saved model, Predict on another image: the new result layer stays, with the image's scale."""
    from napari_bioimg.core.formats.checkpoint import save_checkpoint
    from napari_bioimg.core.metrics import matching

    image, truth = blob_field  # not the image the model was trained on
    viewer.add_image(image, name="blobs", scale=(0.5, 0.5))
    choose_file(monkeypatch, "getOpenFileName", save_checkpoint(blob_model, tmp_path / "m.pt"))
    widget.files.load_btn.native.click()
    assert widget.predict_btn.enabled and "Loaded m.pt" in widget.status.value
    widget.predict_btn.native.click()
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    assert result.name == "blobs [unet]"
    f1 = matching(truth, np.asarray(result.data))["thresholds"]["0.5"]["f1"]
    assert f1 > 0.9, f1  # 1.0 for models trained so at seeds 0-2; the untrained network 0.0
    np.testing.assert_array_equal(result.scale, (0.5, 0.5))
    widget.predict_btn.native.click()  # again: into the same layer, still there
    wait_idle(qtbot, widget)
    assert [layer.name for layer in ours(viewer)] == ["blobs [unet]"]
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    choose_file(monkeypatch, "getOpenFileName", bad)
    widget.files.load_btn.native.click()
    assert "Error" in widget.status.value and widget.predict_btn.enabled  # the loaded model is kept


def test_semantic_scribbles_journey(viewer, widget, qtbot):
    """Own image -> a Labels layer with a few strokes per class -> semantic -> Train -> corrections -> Continue."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    blobs = ((yy % 40 - 20) ** 2 + (xx % 40 - 20) ** 2 < 100).astype(float)
    viewer.add_image(blobs * 100 + rng.normal(0, 10, blobs.shape), name="cells", scale=(2.0, 2.0))
    scribbles = viewer.add_labels(np.zeros((128, 128), np.uint8), name="scribbles", scale=(2.0, 2.0))
    scribbles.paint((3, 60), 1)  # napari's own painting (what the brush does)
    scribbles.paint((3, 100), 1)
    scribbles.paint((20, 20), 2)
    scribbles.paint((60, 60), 2)
    widget.form.task.value = "semantic"
    assert same(widget.form.annotations.value, scribbles)
    fast_settings(widget, epochs=2)
    painted = scribbles.data.copy()
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    assert set(np.unique(result.data)) <= {1, 2}
    np.testing.assert_array_equal(result.scale, (2.0, 2.0))
    # scored on the pixels not painted: foreground IoU (painting everything background scores 0, everything
    # nucleus 0.2, the share of nucleus pixels)
    unpainted = painted == 0
    found, nucleus = (result.data == 2)[unpainted], (blobs > 0)[unpainted]
    iou = np.sum(found & nucleus) / np.sum(found | nucleus)
    assert iou > 0.7, iou  # 0.93 at seed 0
    np.testing.assert_array_equal(scribbles.data, painted)
    scribbles.paint((100, 20), 2)  # a correction, then Continue
    widget.continue_btn.native.click()
    assert "Continuing" in widget.status.value
    wait_idle(qtbot, widget)
    assert [layer.name for layer in ours(viewer)] == ["cells [unet]"]


def test_bad_input_shows_error_and_keeps_layers(viewer, widget, qtbot):
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


def test_failed_training_removes_its_empty_result_layer(viewer, widget, qtbot):
    """With live preview on, the result layer added at Train goes away again when training fails."""
    viewer.add_image(np.random.default_rng(0).normal(size=(64, 64)), name="img")
    viewer.add_labels(np.zeros((64, 64), np.uint8), name="empty")
    fast_settings(widget)
    widget.form.preview.value = True
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    assert widget.status.value.startswith("Error:")
    assert not ours(viewer) and [layer.name for layer in viewer.layers] == ["img", "empty"]
    assert gc.get_freeze_count() == 0


def test_closing_viewer_during_training_ends_worker(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    w = open_widget(viewer)
    viewer.add_image(np.random.default_rng(0).normal(size=(64, 64)), name="img")
    lbl = np.zeros((64, 64), np.uint8)
    lbl[10:30, 10:30] = 1
    viewer.add_labels(lbl, name="lbl")
    fast_settings(w, seconds=600)
    w.train_btn.native.click()
    qtbot.waitUntil(lambda: len(w.plot.losses) >= 2, timeout=60_000)
    worker = w.session.worker("train")
    viewer.close()  # what the window's close button does
    qtbot.waitUntil(lambda: not worker.is_running, timeout=15_000)


def test_3d_stack_trains_volumetric_and_predicts_volume(viewer, widget, qtbot):
    viewer.open_sample("napari-bioimg", "nuclei_3d")
    assert widget.form.axes.value == "ZYX"
    fast_settings(widget, seconds=600)
    widget.form.patch.value = 32
    widget.form.patch_z.value = 16  # the engine suggests 32 slices: half the work on a busy CPU
    widget.form.batch.value = 2
    widget.form.base_channels.value = 8
    widget.form.preview.value = False
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 3, timeout=60_000)
    assert widget.session.run.spatial_dims == 3
    widget.stop_btn.native.click()
    wait_idle(qtbot, widget, timeout=180_000)
    (result,) = ours(viewer)
    assert result.data.shape == viewer.layers["nuclei 3D"].data.shape
    np.testing.assert_array_equal(result.scale, viewer.layers["nuclei 3D"].scale)
    assert widget.session.model.checkpoint["data"]["spatial_dims"] == 3


@pytest.fixture
def synchronous_dask():
    """Chunks computed in the thread that asks for them, so the tests can tell which thread computes."""
    import dask

    with dask.config.set(scheduler="synchronous"):
        yield


class CountingChunks:
    """A dask array whose chunks count how often the GUI thread computes them."""

    def __init__(self, shape, chunks, dtype, fill=0):
        import threading

        import dask.array as da

        self.on_gui_thread = 0
        block = np.full(chunks, fill, dtype)

        def chunk(block_info=None):
            if threading.current_thread() is threading.main_thread():
                self.on_gui_thread += 1
            loc = block_info[None]["array-location"]
            return block[tuple(slice(0, b - a) for a, b in loc)]

        self.array = da.map_blocks(chunk, dtype=dtype, chunks=tuple(
            tuple(min(c, s - i) for i in range(0, s, c)) for s, c in zip(shape, chunks)))

    def calls(self):
        return self.on_gui_thread


def test_widget_beside_a_huge_lazy_image_computes_nothing(viewer, qtbot, synchronous_dask):
    """A 20k x 20k lazy image and labels (3 planes: napari draws one): opening the widget, picking layers
    and switching tasks read shapes, never data, on the GUI thread."""
    image = CountingChunks((3, 20_000, 20_000), (1, 4096, 4096), np.uint16)
    labels = CountingChunks((3, 20_000, 20_000), (1, 4096, 4096), np.uint32)
    viewer.add_image(image.array, name="huge", multiscale=False, contrast_limits=(0, 100))
    viewer.add_labels(labels.array, name="huge labels", multiscale=False)
    settle()  # napari's own work for the new layers, queued or not, is done
    drawn = image.calls(), labels.calls()  # what napari itself computed to draw them
    widget = open_widget(viewer)
    assert same(widget.form.image.value, viewer.layers["huge"])
    assert same(widget.form.annotations.value, viewer.layers["huge labels"])
    for task in ("semantic", "classify", "denoise", "instance"):
        widget.form.task.value = task
    widget.form.task.value = "classify"
    viewer.add_points(np.zeros((1, 3)), name="marks")  # layer events refresh the pickers
    settle()  # anything the widget queued has run: the pickers list the new layer
    assert same(widget.form.classes.value, viewer.layers["marks"])
    assert (image.calls(), labels.calls()) == drawn


def test_training_on_lazy_layers_reads_them_in_the_worker(viewer, widget, qtbot, synchronous_dask):
    """Train and Predict on dask layers: the data is computed by the workers, not on the GUI thread."""
    image = CountingChunks((2, 96, 96), (1, 48, 48), np.float32, fill=1.0)
    labels = CountingChunks((2, 96, 96), (1, 48, 48), np.uint16, fill=1)
    viewer.add_image(image.array, name="lazy", contrast_limits=(0, 2))
    viewer.add_labels(labels.array, name="lazy labels")
    settle()
    drawn = image.calls(), labels.calls()
    widget.form.axes.value = "TYX"
    fast_settings(widget, epochs=1)
    widget.form.patch.value = 32
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    assert (image.calls(), labels.calls()) == drawn
    assert widget.session.model.checkpoint is not None and ours(viewer)


def test_a_running_training_receives_messages(viewer, widget, qtbot):
    """The seam for live training: a message sent to the session reaches the training's worker between steps."""
    from napari_bioimg._qt.jobs import Received

    viewer.open_sample("napari-bioimg", "nuclei")
    fast_settings(widget, seconds=600)
    widget.form.preview.value = False
    received = []
    widget.session.event.connect(lambda run, ev: isinstance(ev, Received) and received.append(ev.message))
    assert not widget.session.send("too early")  # nothing runs: nothing to receive it
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 2, timeout=60_000)
    assert widget.session.send({"kind": "hello"})
    qtbot.waitUntil(lambda: received == [{"kind": "hello"}], timeout=30_000)
    assert widget.session.run.samples[0].image_name == "nuclei"  # a run's inputs are a list of samples
    widget.stop()
    wait_idle(qtbot, widget)
