"""What a new user meets in the widget (issue 24, item 6): no silent pairing, no error hidden by "Ready",
no silent empty result, no preview passed off as a result. Widget from the Plugins menu, samples from
File > Open Sample, real buttons and workers; the assertions read what the user sees."""

import numpy as np
import pytest

from .conftest import fast_settings, ours, same, wait_idle


def _another_slice(viewer, name="slice 34"):
    """A second image of the same shape as the sample (another slice), without annotations of its own."""
    nuclei = viewer.layers["nuclei"]
    return viewer.add_image(np.ascontiguousarray(nuclei.data[::-1]), name=name)


def test_annotations_follow_the_image_and_a_mismatched_pair_asks_first(viewer, widget, qtbot):
    viewer.open_sample("napari-bioimg", "nuclei")
    form = widget.form
    assert same(form.annotations.value, viewer.layers["nuclei labels"])
    other = _another_slice(viewer)
    form.image.value = other
    # the annotations named for 'nuclei' do not follow to 'slice 34': nothing is picked, the status says why not
    assert form.annotations.value is None
    assert "Ready" not in widget.status.value and "nuclei labels" not in widget.status.value
    # its own annotations are picked when they exist (name pairing 'X' / 'X labels')
    own = viewer.add_labels(np.zeros(other.data.shape, np.uint16), name="slice 34 labels")
    form.image.value = viewer.layers["nuclei"]
    assert same(form.annotations.value, viewer.layers["nuclei labels"])
    form.image.value = other
    assert same(form.annotations.value, own)
    # picked on purpose, another image's annotations: the status says so, Train and Add pair ask first
    form.annotations.value = viewer.layers["nuclei labels"]
    assert "Ready" not in widget.status.value and "named for the image 'nuclei'" in widget.status.value
    widget.train_btn.native.click()
    assert not widget.busy and widget.train_btn.text == "Train anyway"
    assert "'nuclei labels' is named for the image 'nuclei', not 'slice 34'" in widget.status.value
    widget.data.add_btn.native.click()
    assert widget.data.pairs == [] and widget.status.value.startswith("Not added")
    widget.data.add_btn.native.click()  # asked; pressed again: added
    assert len(widget.data.pairs) == 1 and "Added 'slice 34'" in widget.status.value


@pytest.mark.parametrize("fail_after", [0, 20])  # before the first preview, after it
def test_a_failed_training_keeps_its_error_and_what_to_do(viewer, widget, qtbot, monkeypatch, fail_after):
    from napari_bioimg.core import get_task

    task = type(get_task("instance"))
    loss, steps = task.loss, []

    def diverging(self, *args):  # what a too high learning rate does after a while: the loss becomes NaN
        steps.append(1)
        value = loss(self, *args)
        return value * float("nan") if len(steps) > fail_after else value

    monkeypatch.setattr(task, "loss", diverging)
    viewer.open_sample("napari-bioimg", "nuclei")
    fast_settings(widget, epochs=4)
    widget.form.preview.value = True
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    status = widget.status.value
    assert status.startswith("Error") and "NaN" in status and "lower the learning rate" in status, status
    assert "Ready" not in status
    assert widget.session.model is None and not ours(viewer)  # no half-trained result left as if it were one


def test_stopping_before_the_model_found_anything_says_so(viewer, widget, qtbot):
    viewer.open_sample("napari-bioimg", "nuclei")
    fast_settings(widget, seconds=600)
    widget.form.preview.value = False
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 1, timeout=60_000)
    widget.stop_btn.native.click()  # a few seconds in: the model has not learnt to find nuclei yet
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    n = len(np.unique(result.data)) - (0 in result.data)
    assert n == 0 or (n == 1 and result.data.all())  # what this test is about: nothing found yet
    status = widget.status.value
    assert "Training stopped" in status and "found no objects yet" in status and "Continue" in status, status


def test_previews_say_they_are_previews_and_never_pass_for_the_result(viewer, widget, qtbot):
    viewer.open_sample("napari-bioimg", "nuclei")
    fast_settings(widget, epochs=2)
    widget.form.preview.value = True
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: any(layer.data.any() for layer in ours(viewer)), timeout=60_000)
    qtbot.waitUntil(lambda: "Preview: the model at step" in widget.status.value, timeout=30_000)
    viewer.layers.remove(viewer.layers["nuclei"])  # the image goes away mid-training
    wait_idle(qtbot, widget)
    (kept,) = ours(viewer)
    assert kept.name.startswith("nuclei [unet] (preview, step ")
    assert "was closed during training" in widget.status.value and "nothing was predicted" in widget.status.value


def test_objects_get_a_class_in_the_widget_without_the_console(viewer, widget, qtbot):
    from napari_bioimg._qt import classes as C
    from tests.conftest import make_objects2d

    image, labels, truth = make_objects2d()
    viewer.add_image(image, name="cells")
    objects = viewer.add_labels(labels, name="objects")
    widget.form.task.value = "classify"
    assert not widget.marker.row.native.isHidden()
    assert "Ready" not in widget.status.value and "Mark objects" in widget.status.value
    ids = sorted(truth)[:4]
    centre = {i: np.argwhere(labels == i).mean(0) for i in ids}
    widget.marker.mark_btn.native.click()
    marks = viewer.layers["classes"]
    assert viewer.layers.selection.active.name == "classes" and marks.mode == "add"
    marks.add(centre[ids[0]])  # what a click in add mode does
    marks.add(centre[ids[1]])
    assert "Ready" not in widget.status.value and "class 1: 2 objects" in widget.status.value
    widget.marker.cls.value = 2
    marks.add(centre[ids[2]])
    marks.add(centre[ids[3]])
    assert same(widget.form.classes.value, marks)
    assert "Ready" in widget.status.value and "class 2: 2 objects" in widget.status.value
    got = C.class_request(widget.form.classes.value, objects)(labels).classes
    assert {k: str(v) for k, v in got.items()} == {ids[0]: "1", ids[1]: "1", ids[2]: "2", ids[3]: "2"}
    widget.form.task.value = "instance"
    assert widget.marker.row.native.isHidden()


def test_a_full_disk_names_the_file_and_loses_nothing(viewer, widget, qtbot, tmp_path, monkeypatch, blob_model):
    import torch

    from .conftest import choose_file

    widget.session.set_model(blob_model)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    choose_file(monkeypatch, "getSaveFileName", tmp_path / "nuclei.pt")
    widget.files.save_btn.native.click()
    status = widget.status.value
    assert status.startswith("Error: could not write") and "nuclei.pt" in status and "Nothing was lost" in status
    assert "internal error" not in status and list(tmp_path.iterdir()) == []


def test_words_are_the_users_not_the_engines(viewer, widget, blob_model):
    from types import SimpleNamespace

    from napari_bioimg._qt.prose import validation_note

    viewer.open_sample("napari-bioimg", "nuclei")
    widget.session.set_model(blob_model)
    widget.form.time_limit.value = 30  # any change: the guidance is said again
    assert "unet (2D) to segment objects" in widget.status.value and "for instance" not in widget.status.value
    assert "to segment objects" in widget.predict_btn.tooltip
    # nothing is annotated for denoising: a small validation set is not solved by annotating more
    started = SimpleNamespace(n_val_pixels=900, unit="pixels")
    _, caveat = validation_note(SimpleNamespace(task="denoise", val=None, started=started))
    assert caveat is not None and "annotate" not in caveat
    _, caveat = validation_note(SimpleNamespace(task="semantic", val=None, started=started))
    assert "annotate more" in caveat
