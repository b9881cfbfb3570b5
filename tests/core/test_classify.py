"""Worker tier for classification: training drained synchronously, per-object prediction, bad input."""

import numpy as np
import pytest

from napari_bioimg.core import TrainConfig, get_task, predict_sync, train_sync
from napari_bioimg.core import events as E
from napari_bioimg.core.data.annotations import classes_from_points
from napari_bioimg.core.errors import InputError
from napari_bioimg.core.tasks import ClassPrediction
from tests.conftest import make_objects2d

FAST = dict(task="classify", model="cnn", model_config={"depth": 3, "base_channels": 8}, batch_size=16,
            steps_per_epoch=12, epochs=4, time_limit=None, learning_rate=3e-3, preview_every=0)
SHORT = dict(FAST, epochs=1, steps_per_epoch=3)


def _annotate(truth, per_class=6):
    """The first ``per_class`` objects of each class, as a CSV-like table."""
    picked = {}
    for i, c in truth.items():
        if sum(v == c for v in picked.values()) < per_class:
            picked[i] = c
    return {"label_id": list(picked), "class": list(picked.values())}


@pytest.fixture(scope="module")
def trained():
    image, labels, truth = make_objects2d()
    table = _annotate(truth)
    events = []
    res = train_sync(image, labels, TrainConfig(**FAST), extra={"classes": table}, callback=events.append,
                     preview_index=0)
    return image, labels, truth, table, res, events


def test_task_describes_its_inputs():
    assert get_task("classify").inputs == ("image", "objects", "classes")
    assert get_task("classify-image").inputs == ("image", "classes")
    assert get_task("instance").inputs == ("image", "labels")


def test_training_beats_chance_on_unseen_objects(trained):
    image, labels, truth, table, res, events = trained
    start = next(e for e in events if isinstance(e, E.TrainingStarted))
    assert start.unit == "objects" and start.n_train_pixels + start.n_val_pixels == 18
    vals = [e for e in events if isinstance(e, E.ValidationDone)]
    assert vals and vals[-1].report["confusion_matrix"] and set(vals[-1].report["classes"]) == {"dim", "long", "round"}
    pred = predict_sync(res.checkpoint, image, labels=labels)
    assert isinstance(pred, ClassPrediction) and len(pred.ids) == len(truth)
    unseen = [i for i in truth if i not in table["label_id"]]
    got = dict(zip(pred.ids.tolist(), pred.classes))
    accuracy = np.mean([got[i] == truth[i] for i in unseen])
    assert accuracy > 0.75, accuracy  # chance is 1/3
    assert np.allclose(pred.probabilities.sum(1), 1, atol=1e-4) and np.all(pred.probability >= 1 / 3 - 1e-6)
    meta = res.checkpoint["task"]["meta"]
    assert meta["class_names"] == ["dim", "long", "round"] and meta["validation_report"]["n"] == meta["n_val"]


def test_class_image_and_table(trained):
    image, labels, truth, table, res, events = trained
    keep = labels.copy()
    pred = predict_sync(res.checkpoint, image, labels=labels, class_image=True)
    assert pred.class_image.shape == labels.shape and pred.class_image.dtype == np.uint8
    values = dict(zip(pred.class_names, pred.class_values))
    first = int(pred.ids[0])
    assert np.all(pred.class_image[labels == first] == values[pred.classes[0]])
    assert np.all(pred.class_image[labels == 0] == 0)
    columns = pred.table()
    assert list(columns) == ["label_id", "class", "probability"] and len(columns["class"]) == len(truth)
    np.testing.assert_array_equal(labels, keep)


def test_live_preview_paints_classes(trained):
    image, labels, *_ = trained
    previews = []
    train_sync(image, labels, TrainConfig(**dict(SHORT, preview_every=1e-9)),
               extra={"classes": _annotate(make_objects2d()[2])},
               callback=lambda e: isinstance(e, E.PreviewReady) and previews.append(e))
    assert len(previews) == 3
    p = previews[-1]
    assert p.kind == "labels" and p.data.shape == labels.shape
    assert set(np.unique(p.data[labels > 0])) <= {1, 2, 3} and np.all(p.data[labels == 0] == 0)


def test_int_class_names_keep_their_values():
    image, labels, truth = make_objects2d(1)
    codes = {"round": 2, "dim": 5, "long": 9}
    table = _annotate({i: codes[c] for i, c in truth.items()}, 4)
    res = train_sync(image, labels, TrainConfig(**dict(SHORT, val_fraction=0)), extra={"classes": table})
    pred = predict_sync(res.checkpoint, image, labels=labels, class_image=True)
    assert pred.class_names == [2, 5, 9] and pred.class_values == [2, 5, 9]
    assert set(np.unique(pred.class_image)) <= {0, 2, 5, 9}


def test_annotation_problems_become_notices():
    image, labels, truth = make_objects2d()
    table = _annotate(truth, 4)
    lonely = next(i for i in truth if i not in table["label_id"])
    table["label_id"] += [lonely, 9999]
    table["class"] += ["mitotic", "round"]  # a class with one example, and an id that is not an object
    notes = []
    res = train_sync(image, labels, TrainConfig(**SHORT), extra={"classes": table},
                     callback=lambda e: isinstance(e, E.Notice) and notes.append(e.message))
    text = " ".join(notes)
    assert "single annotated example" in text and "mitotic" in text
    assert "not in the objects layer" in text and "9999" in text
    assert res.checkpoint["task"]["meta"]["class_names"] == ["dim", "long", "mitotic", "round"]


def test_points_on_background_are_reported_not_fatal():
    image, labels, truth = make_objects2d()
    table = _annotate(truth, 4)
    centres = [np.argwhere(labels == i).mean(0) for i in table["label_id"]]
    bg = np.argwhere(labels == 0)[0]
    ann = classes_from_points(labels, np.array([*centres, bg]), [*table["class"], "round"])
    assert len(ann.classes) == 12 and "background" in ann.warnings[0]
    notes = []
    train_sync(image, labels, TrainConfig(**SHORT), extra={"classes": ann},
               callback=lambda e: isinstance(e, E.Notice) and notes.append(e.message))
    assert any("background" in n for n in notes)


@pytest.mark.parametrize("case, message", [
    ("empty", "objects layer is empty"),
    ("one_class", "only one class"),
    ("all_missing", "no annotated objects"),
    ("no_classes", "no class annotations"),
])
def test_bad_input_is_clear(case, message):
    image, labels, truth = make_objects2d()
    table = _annotate(truth, 3)
    extra = {"classes": table}
    if case == "empty":
        labels = np.zeros_like(labels)
    elif case == "one_class":
        extra = {"classes": {i: "round" for i in list(truth)[:5]}}
    elif case == "all_missing":
        extra = {"classes": {5000: "a", 5001: "b"}}
    else:
        extra = None
    with pytest.raises(InputError, match=message):
        train_sync(image, labels, TrainConfig(**SHORT), extra=extra)


def test_predict_needs_the_objects(trained):
    image, labels, truth, table, res, events = trained
    with pytest.raises(InputError, match="label image"):
        predict_sync(res.checkpoint, image)
    with pytest.raises(InputError, match="nothing to classify"):
        predict_sync(res.checkpoint, image, labels=np.zeros_like(labels))
    with pytest.raises(InputError, match="does not match"):
        predict_sync(res.checkpoint, image, labels=labels[:50])


def test_image_classification_per_frame():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:24, :24]
    frames, truth = [], {}
    for i in range(24):
        kind = ["spot", "ring"][i % 2]
        r = np.hypot(yy - 12 - rng.integers(-3, 4), xx - 12 - rng.integers(-3, 4))
        signal = (r < 4) if kind == "spot" else ((r > 6) & (r < 9))
        frames.append(rng.normal(10, 2, (24, 24)) + 30 * signal)
        truth[i] = kind
    stack = np.stack(frames).astype(np.float32)
    table = {"frame": list(range(10)), "class": [truth[i] for i in range(10)]}
    cfg = TrainConfig(**dict(FAST, task="classify-image", epochs=6, steps_per_epoch=10))
    res = train_sync(stack, None, cfg, extra={"classes": table})
    assert res.checkpoint["data"]["spatial_dims"] == 2 and res.checkpoint["data"]["in_channels"] == 1
    pred = predict_sync(res.checkpoint, stack, class_image=True)
    assert pred.id_name == "frame" and pred.ids.tolist() == list(range(24))
    accuracy = np.mean([c == truth[i] for i, c in zip(pred.ids, pred.classes)][10:])
    assert accuracy > 0.8, accuracy
    assert pred.class_image.shape == stack.shape
    with pytest.raises(InputError, match="several frames"):
        train_sync(stack[0], None, cfg, extra={"classes": table})


def test_fine_tune_and_export_rules(trained, tmp_path):
    from napari_bioimg.core.errors import ConfigError
    from napari_bioimg.core.formats.export import export_model

    image, labels, truth, table, res, events = trained
    tuned = train_sync(image, labels, TrainConfig(**SHORT), extra={"classes": table}, init_checkpoint=res.checkpoint)
    assert tuned.steps == res.steps + 3  # the step count continues
    other = {"label_id": table["label_id"], "class": [f"x{c}" for c in table["class"]]}
    with pytest.raises(ConfigError, match="knows the classes"):
        train_sync(image, labels, TrainConfig(**SHORT), extra={"classes": other}, init_checkpoint=res.checkpoint)
    with pytest.raises(ConfigError, match="cannot be exported"):
        export_model(res.checkpoint, "onnx", tmp_path / "m.onnx")
