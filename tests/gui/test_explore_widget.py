"""GUI tier, "Explore objects": embed the sample's nuclei, click between plot and layer, lasso a class,
train a classifier on it, explain the classifier. A real viewer, the widget opened from the plugin menu's
path, the real buttons and workers."""

from types import SimpleNamespace

import numpy as np
import pytest

from napari_bioimg._qt.session import Job

from .conftest import PLUGIN, ours, same, snapshot

EXPLORE = "Explore objects"


@pytest.fixture
def explore(viewer, qtbot):
    _dock, w = viewer.window.add_plugin_dock_widget(PLUGIN, EXPLORE)
    yield w
    w.stop()
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)


def wait_idle(qtbot, w, timeout=180_000):
    qtbot.waitUntil(lambda: not w.busy, timeout=timeout)


def embed(viewer, explore, qtbot, seconds=2):
    assert same(explore.image.value, viewer.layers["nuclei"])
    assert same(explore.objects.value, viewer.layers["nuclei labels"])  # preselected: it covers the image
    explore.seconds.value = seconds
    explore.compute_btn.native.click()
    assert explore.busy and not explore.compute_btn.enabled and explore.stop_btn.enabled
    assert list(explore.session.workers) == [Job.EMBED]  # the one worker stack: a Session's job
    wait_idle(qtbot, explore)
    return viewer.layers["nuclei labels"]


def test_embedding_is_linked_both_ways_and_marks_classes(viewer, explore, qtbot):
    viewer.open_sample(PLUGIN, "nuclei")
    before = snapshot(viewer)
    objects = embed(viewer, explore, qtbot)
    ids = np.unique(objects.data)[1:]
    features = objects.features
    assert {"index", "label", "emb_0", "emb_31", "x2d", "y2d"} <= set(features.columns)
    assert set(ids) <= set(features["index"])
    plot = explore.plot
    assert np.array_equal(plot.ids, ids) and plot.coords.shape == (len(ids), 2)
    row = dict(zip(features["index"], range(len(features))))
    np.testing.assert_allclose(plot.coords[:, 0], features["x2d"].to_numpy()[[row[i] for i in ids]], rtol=1e-5)
    assert "Embedded" in explore.status.value and not explore.busy and explore.compute_btn.enabled
    assert ours(viewer) == []  # nothing but features: no new layer

    # plot -> layer: clicking a point selects its object
    k = 3
    plot.click(*plot.coords[k])
    assert objects.selected_label == ids[k] and plot.highlighted == ids[k]
    # ... and shows it in the image: alone (napari's "show selected"), the camera on it
    assert objects.show_selected_label
    centre = np.argwhere(objects.data == ids[k]).mean(axis=0)
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], objects.data_to_world(centre), atol=3)
    # layer -> plot: selecting another object (the picker, or typing the label) rings its point
    objects.selected_label = int(ids[5])
    assert plot.highlighted == ids[5]

    # a click on an object in the viewer (pan/zoom mode) selects it, through the callback the widget attached
    (callback,) = [c for c in objects.mouse_drag_callbacks if getattr(c, "__name__", "") == "click_selects"]
    pixels = np.argwhere(objects.data == ids[7])
    centre = pixels[np.argmin(((pixels - pixels.mean(axis=0)) ** 2).sum(axis=1))]  # inside, near the middle
    click = SimpleNamespace(type="mouse_press", position=tuple(objects.data_to_world(centre)),
                            view_direction=None, dims_displayed=[0, 1])
    callback(viewer.layers["nuclei labels"], click)
    assert objects.selected_label == ids[7] and plot.highlighted == ids[7]

    # lasso a region of the plot, mark it as a class; mark the rest as another
    x, y = plot.coords[:, 0], plot.coords[:, 1]
    cut = np.median(x)
    lo, hi = y.min() - 1, y.max() + 1
    plot.lasso([(x.min() - 1, lo), (cut, lo), (cut, hi), (x.min() - 1, hi)])
    left = set(ids[x <= cut])
    assert set(plot.selected) == left and explore.mark_btn.enabled
    explore.class_name.value = "left"
    explore.mark_btn.native.click()
    plot.lasso([(cut, lo), (x.max() + 1, lo), (x.max() + 1, hi), (cut, hi)])
    explore.class_name.value = "right"
    explore.mark_btn.native.click()
    classes = dict(zip(objects.features["index"], objects.features["class"]))
    assert all(classes[i] == ("left" if i in left else "right") for i in ids)
    assert set(plot.classes) == {"left", "right"}  # the points are coloured by class
    for name, data in before.items():  # the label data (and the image) never change
        np.testing.assert_array_equal(viewer.layers[name].data, data)

    # the classify task of the main widget reads the marked classes from the features, as they are
    _dock, main = viewer.window.add_plugin_dock_widget(PLUGIN, "Deep learning (train / predict)")
    form = main.form
    form.task.value = "classify"
    assert same(form.annotations.value, objects)
    form.classes.value = "features"
    form.epochs.value = 1
    form.batch.value = 8
    form.depth.value = 2
    form.base_channels.value = 8
    form.preview.value = False
    main.train_btn.native.click()
    qtbot.waitUntil(lambda: not main.busy and bool(ours(viewer)), timeout=180_000)
    qtbot.waitUntil(lambda: not main.busy, timeout=180_000)  # the prediction that follows training
    (result,) = ours(viewer)
    assert set(result.features["class"]) <= {"left", "right"} and len(result.features) == len(ids)


def test_closing_the_widget_detaches_it_from_the_layer(viewer, explore, qtbot):
    viewer.open_sample(PLUGIN, "nuclei")
    objects = embed(viewer, explore, qtbot, seconds=1)
    n = len(objects.mouse_drag_callbacks)
    viewer.window.remove_dock_widget("all")
    qtbot.waitUntil(lambda: explore.closed, timeout=10_000)
    assert len(objects.mouse_drag_callbacks) == n - 1
    objects.selected_label = 3  # no longer followed: nothing to call into


def test_stop_ends_training_early_and_still_embeds(viewer, explore, qtbot):
    viewer.open_sample(PLUGIN, "nuclei")
    explore.seconds.value = 600
    explore.compute_btn.native.click()
    qtbot.waitUntil(lambda: "step" in explore.status.value, timeout=60_000)
    explore.stop_btn.native.click()
    wait_idle(qtbot, explore, timeout=60_000)
    assert "Embedded" in explore.status.value
    assert len(explore.plot.ids) == len(np.unique(viewer.layers["nuclei labels"].data)) - 1


def test_explain_adds_a_map_over_the_objects(viewer, explore, qtbot, tmp_path):
    from napari_bioimg._sample_data import nuclei_2d
    from napari_bioimg.core import TrainConfig, train_sync
    from napari_bioimg.core.formats.checkpoint import save_checkpoint

    (image, _, _), (labels, _, _) = nuclei_2d()
    ids = np.unique(labels)[1:]
    area = np.bincount(labels.ravel())[ids]
    classes = {"label_id": [int(i) for i in ids], "class": ["big" if a > np.median(area) else "small" for a in area]}
    cfg = TrainConfig(task="classify", model="cnn", epochs=1, steps_per_epoch=10, time_limit=None, batch_size=8,
                      val_fraction=0, model_config={"depth": 3, "base_channels": 8}, preview_every=0)
    path = tmp_path / "classes.pt"
    save_checkpoint(train_sync(image, labels, cfg, extra={"classes": classes}).checkpoint, path)

    viewer.open_sample(PLUGIN, "nuclei")
    objects = viewer.layers["nuclei labels"]
    objects.scale = (0.5, 0.5)
    before = snapshot(viewer)
    explore.model_file.value = path
    explore.explain_btn.native.click()
    wait_idle(qtbot, explore)
    (layer,) = ours(viewer)
    assert layer.name == "nuclei labels [explanation]" and layer.__class__.__name__ == "Image"
    assert layer.data.shape == objects.data.shape and np.allclose(layer.scale, objects.scale)
    assert layer.data[objects.data > 0].max() > 0 and np.all(layer.data[objects.data == 0] == 0)
    features = objects.features
    assert {"class_predicted", "confidence", "margin"} <= set(features.columns)
    assert set(features["class_predicted"].dropna()) <= {"big", "small"}
    assert "Explained" in explore.status.value
    for name, data in before.items():
        np.testing.assert_array_equal(viewer.layers[name].data, data)
    # again: the same layer is refreshed, not a second one added
    explore.explain_btn.native.click()
    wait_idle(qtbot, explore)
    assert len(ours(viewer)) == 1

    # classifier features for the embedding, from the same model file
    explore.source.value = "classifier model (penultimate layer)"
    explore.compute_btn.native.click()
    wait_idle(qtbot, explore)
    assert "classifier features" in explore.plot.title and len(explore.plot.ids) == len(ids)


def test_explain_without_a_model_is_a_clear_error(viewer, explore, qtbot):
    viewer.open_sample(PLUGIN, "nuclei")
    explore.explain_btn.native.click()
    assert not explore.busy
