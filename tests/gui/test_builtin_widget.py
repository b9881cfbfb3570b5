"""Start from a built-in model in the widget: Predict with no training finds the nuclei."""


from napari_bioimg.core.metrics import matching

from .conftest import ours, wait_idle


def test_pick_builtin_nuclei_and_predict_without_training(viewer, widget, qtbot):
    viewer.open_sample("napari-bioimg", "nuclei")
    truth = viewer.layers["nuclei labels"].data.copy()
    assert not widget.predict_btn.enabled  # blank start: nothing to predict with until trained
    combo = widget.start_from.combo
    assert "builtin:nuclei-2d" in combo.choices and "builtin:denoise-2d" not in combo.choices  # fits the task
    combo.value = "builtin:nuclei-2d"
    assert widget.predict_btn.enabled and "builtin:nuclei-2d" in widget.status.value
    widget.predict_btn.native.click()
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    f1 = matching(truth, result.data)["thresholds"]["0.5"]["f1"]
    assert f1 > 0.6, f1  # the sample is real: no built-in trained on it
    assert widget.start_from.fine_tune()  # Train would now fine-tune the built-in, not start blank
    widget.start_from.diameter.value = 400  # far outside the 12-60 px it was trained on
    widget.predict_btn.native.click()
    wait_idle(qtbot, widget)
    assert ours(viewer)[0].data.shape == truth.shape  # rescaled and back to the image's pixels
    widget.form.task.value = "denoise"
    assert "builtin:nuclei-2d" not in widget.start_from.combo.choices


def test_an_unset_object_diameter_reads_as_the_models_scale(widget):
    box = widget.start_from.diameter
    assert box.value == 0 and box.native.text() == "model's scale"
    box.value = 30
    assert box.native.text().startswith("30")
