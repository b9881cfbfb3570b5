"""The engine's live mode: training that takes annotation edits while it runs."""

import queue

import numpy as np
import pytest

from napari_bioimg.core import TrainConfig
from napari_bioimg.core.control import Control
from napari_bioimg.core.events import LivePreview, LiveWaiting, Notice, StepDone
from napari_bioimg.core.live import AnnotationEdit, ViewChanged, train_live

FAST = dict(time_limit=None, epochs=40, steps_per_epoch=25, batch_size=4, patch_size=32, learning_rate=5e-3,
            model_config={"depth": 2, "base_channels": 8}, preview_every=0.5, seed=0, val_fraction=0)


def stripes(n=96):
    """Three kinds of texture side by side: dark (class 1), bright (class 2), striped (class 3)."""
    rng = np.random.default_rng(0)
    image = rng.normal(0, 8, (n, n)).astype(np.float32)
    image[:, n // 3: 2 * n // 3] += 100
    image[:, 2 * n // 3:] += 100 * ((np.arange(n) // 3) % 2)[:, None]
    truth = np.ones((n, n), np.uint8)
    truth[:, n // 3: 2 * n // 3] = 2
    truth[:, 2 * n // 3:] = 3
    return image, truth


def drive(gen, on_event, limit=3000):
    """Run a live generator, calling ``on_event(ev)`` after each event; return its result."""
    for _ in range(limit):
        try:
            ev = next(gen)
        except StopIteration as done:
            return done.value
        on_event(ev)
    raise AssertionError("the live run did not end")


def test_waits_for_two_classes_then_learns_every_new_stroke_and_class():
    image, truth = stripes()
    scribbles = np.zeros_like(truth)
    scribbles[40:44, 5:25] = 1  # one class only: nothing to train on yet
    inbox, control = queue.Queue(), Control()
    gen = train_live(image, scribbles, TrainConfig(task="semantic", **FAST), inbox=inbox, control=control)
    seen = {"waiting": 0, "steps": 0, "previews": [], "notices": []}
    plan = {"class2": False, "class3": False, "view": False}

    def on_event(ev):
        if isinstance(ev, LiveWaiting):
            seen["waiting"] += 1
            if not plan["class2"]:  # the user paints the second class
                plan["class2"] = True
                inbox.put(AnnotationEdit((slice(40, 44), slice(37, 57)), np.full((4, 20), 2, np.uint8)))
        elif isinstance(ev, StepDone):
            seen["steps"] += 1
            if ev.step == 30 and not plan["class3"]:  # a new class mid-session
                plan["class3"] = True
                inbox.put(AnnotationEdit((slice(40, 44), slice(70, 90)), np.full((4, 20), 3, np.uint8)))
            if ev.step == 31:
                inbox.put(ViewChanged((slice(0, 48), slice(48, 96))))
                plan["view"] = True
            if ev.step >= 400:
                control.stop()
        elif isinstance(ev, LivePreview):
            seen["previews"].append(ev)
        elif isinstance(ev, Notice):
            seen["notices"].append(ev.message)

    result = drive(gen, on_event)
    assert seen["waiting"] >= 1 and seen["steps"] >= 400
    assert any("new class" in m for m in seen["notices"]), seen["notices"]
    assert result.checkpoint["data"]["out_channels"] == 3
    last = seen["previews"][-1]
    assert last.box == (slice(0, 48), slice(48, 96)) and last.data.shape == (48, 48)
    assert last.edits == 2 and last.uncertainty.shape == (48, 48) and set(last.confidence) <= {1, 2, 3}
    # the view holds bright (2) and striped (3) columns: the new class is learned there
    agree = np.mean(last.data == truth[0:48, 48:96])
    assert agree > 0.8, agree
    early = [p for p in seen["previews"] if p.edits == 1]
    assert early and all(3 not in np.unique(p.data) for p in early)  # before the stroke, no class 3


def test_stop_before_any_annotation_is_a_clear_error():
    image, truth = stripes(64)
    inbox, control = queue.Queue(), Control()
    gen = train_live(image, np.zeros_like(truth), TrainConfig(task="semantic", **FAST), inbox=inbox, control=control)
    events = []

    def on_event(ev):
        events.append(ev)
        control.stop()

    with pytest.raises(Exception, match="stopped before it could start"):
        drive(gen, on_event)
    assert isinstance(events[0], LiveWaiting) and "empty" in events[0].reason


def test_instance_masks_painted_mid_session_are_learned():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:96, :96]
    truth = np.zeros((96, 96), np.uint16)
    for i, (cy, cx) in enumerate([(20, 20), (20, 70), (70, 25), (70, 72), (45, 47)], 1):
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 < 81] = i
    image = ((truth > 0) * 120 + rng.normal(0, 10, truth.shape)).astype(np.float32)
    masks = np.where(np.isin(truth, [1, 2]), truth, 0).astype(np.uint16)  # two nuclei drawn so far
    inbox, control = queue.Queue(), Control()
    gen = train_live(image, masks, TrainConfig(task="instance", **FAST), inbox=inbox, control=control)
    previews = []

    def on_event(ev):
        if isinstance(ev, StepDone):
            if ev.step == 20:  # the user draws the other three
                for k in (3, 4, 5):
                    ys, xs = np.nonzero(truth == k)
                    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
                    region = masks[box].copy()
                    region[truth[box] == k] = k
                    inbox.put(AnnotationEdit(box, region))
            if ev.step >= 250:
                control.stop()
        elif isinstance(ev, LivePreview):
            previews.append(ev)

    result = drive(gen, on_event)
    assert result.steps >= 250
    final = previews[-1]
    assert final.edits == 3 and final.data.shape == (96, 96) and final.uncertainty is not None
    found = {k for k in (3, 4, 5) if final.data[truth == k].any() and np.mean(final.data[truth == k] > 0) > 0.7}
    assert found == {3, 4, 5}, found
    assert final.confidence and all(0 <= v <= 1 for v in final.confidence.values())


def test_classification_grows_when_a_class_is_added():
    from napari_bioimg.core.data.annotations import classes_from_table
    from napari_bioimg.core.live import ClassesChanged
    from tests.conftest import make_objects2d

    image, objects, truth = make_objects2d()
    ids = sorted(truth)
    first = {i: truth[i] for i in ids if truth[i] in ("round", "dim")}
    first = dict(list(first.items())[:8])
    inbox, control = queue.Queue(), Control()
    config = TrainConfig(task="classify", time_limit=None, epochs=20, steps_per_epoch=20, batch_size=8,
                         model_config={"depth": 2, "base_channels": 8}, seed=0, preview_every=0.5)
    table = {"label_id": list(first), "class": list(first.values())}
    gen = train_live(image, objects, config, inbox=inbox, control=control,
                     extra={"classes": classes_from_table(table)})
    notices = []

    def on_event(ev):
        if isinstance(ev, StepDone):
            if ev.step == 10:
                more = {i: truth[i] for i in ids if truth[i] == "long"}
                full = {**first, **dict(list(more.items())[:4])}
                inbox.put(ClassesChanged(lambda labels, f=full: classes_from_table(
                    {"label_id": list(f), "class": list(f.values())})))
            if ev.step >= 120:
                control.stop()
        elif isinstance(ev, Notice):
            notices.append(ev.message)

    result = drive(gen, on_event)
    assert result.checkpoint["task"]["meta"]["class_names"] == ["dim", "long", "round"]
    assert any("new class long" in m for m in notices), notices
