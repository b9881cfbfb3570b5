"""GUI tier, classification journey: objects + a few points with a class -> Train -> every object classified."""

import numpy as np

from tests.conftest import make_objects2d

from .conftest import ours, same, snapshot, wait_idle


def _setup(viewer, widget, per_class=6):
    image, labels, truth = make_objects2d()
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="objects")
    picked = {}
    for i, c in truth.items():
        if sum(v == c for v in picked.values()) < per_class:
            picked[i] = c
    centres = np.array([np.argwhere(labels == i).mean(0) for i in picked])
    viewer.add_points(centres, name="marks", features={"class": list(picked.values())})
    widget.form.task.value = "classify"
    widget.form.time_limit.value = 600
    widget.form.epochs.value = 1  # 50 steps: the work does not depend on the machine's load
    widget.form.batch.value = 16
    widget.form.depth.value = 3
    widget.form.base_channels.value = 8
    widget.form.lr.value = 3e-3
    return truth, picked


def test_classify_journey(viewer, widget, qtbot):
    truth, picked = _setup(viewer, widget)
    assert not widget.form.annotations.native.isHidden() and not widget.form.classes.native.isHidden()
    assert widget.form.annotations.label == "Objects" and widget.form.model.value == "cnn"
    assert same(widget.form.annotations.value, viewer.layers["objects"])
    assert same(widget.form.classes.value, viewer.layers["marks"])  # the Points layer is preselected
    before = snapshot(viewer)
    widget.form.preview.value = True
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    assert result.__class__.__name__ == "Labels"
    np.testing.assert_array_equal(result.data, viewer.layers["objects"].data)  # the objects, coloured by class
    features = result.features
    assert set(features.columns) >= {"index", "class", "probability"} and len(features) == len(truth)
    got = dict(zip(features["index"], features["class"]))
    unseen = [i for i in truth if i not in picked]
    accuracy = np.mean([got[i] == truth[i] for i in unseen])
    assert accuracy > 0.7, accuracy
    # the probability of the class given, on the objects nobody annotated: the untrained network gives
    # 0.35-0.37 to every object (three classes: never below 1/3); trained as here, 0.92-0.97 (CLI, seeds 0-2)
    probability = dict(zip(features["index"], features["probability"]))
    assert np.median([probability[i] for i in unseen]) > 0.7 and max(probability.values()) <= 1
    colors = {tuple(np.round(result.colormap.map(i), 3)) for i, c in got.items() if c == "long"}
    assert len(colors) == 1  # one colour per class
    assert not widget.confusion.isHidden() and widget.confusion.matrix.shape == (3, 3)
    assert "Classified" in widget.status.value
    for name, data in before.items():  # the user's layers are untouched
        np.testing.assert_array_equal(viewer.layers[name].data, data)
    # Train again with the live preview: the preview paints the same objects, one colour per class
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 5, timeout=60_000)
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    np.testing.assert_array_equal(result.data, viewer.layers["objects"].data)
    widget.form.task.value = "instance"
    assert widget.form.classes.native.isHidden() and widget.confusion.isHidden()


def test_missing_class_feature_is_a_clear_error(viewer, widget, qtbot):
    _setup(viewer, widget)
    viewer.layers["marks"].features = {"kind": ["a"] * len(viewer.layers["marks"].data)}
    widget.form.classes.value = viewer.layers["marks"]
    widget.train_btn.native.click()
    assert not widget.busy and "no 'class' feature" in widget.status.value
    widget.form.classes.value = "features"
    widget.train_btn.native.click()
    assert not widget.busy and "no 'class' column" in widget.status.value
