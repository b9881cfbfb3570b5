"""A live session as the user lives it: until Stop, paused when idle, every painted class learnt (issue 21)."""

import queue
import time

import numpy as np

from napari_bioimg.core import TrainConfig, predict_sync
from napari_bioimg.core.control import Control
from napari_bioimg.core.events import LivePaused, LivePreview, StepDone, TrainingStarted
from napari_bioimg.core.live import AnnotationEdit, train_live
from tests.live_scene import four_classes, iou, paint, strokes

SMALL = dict(epochs=None, batch_size=4, patch_size=64, model_config={"depth": 2, "base_channels": 16},
             seed=0, num_threads=1, steps_per_epoch=25)


def send(inbox, labels, truth, label, count, brush=3, seed=0):
    for line in strokes(truth, label, count, seed=seed):
        for box, values in paint(labels, label, line, brush):
            inbox.put(AnnotationEdit(box, values))


def test_live_training_extends_the_one_loop_through_its_hooks():
    from napari_bioimg.core.live.trainer import LiveTrainer
    from napari_bioimg.core.training.loop import Trainer

    assert LiveTrainer.run is Trainer.run  # no copy of the loop to drift apart


def test_a_session_outlasts_its_time_limit_pauses_when_idle_and_a_stroke_resumes_it(monkeypatch):
    from napari_bioimg.core.live import trainer

    monkeypatch.setattr(trainer, "IDLE_PAUSE", 2.0)
    image, truth = four_classes(64)
    labels = np.zeros_like(truth)
    inbox, control = queue.Queue(), Control()
    send(inbox, labels, truth, 1, 2)
    send(inbox, labels, truth, 2, 2)
    gen = train_live(image, labels.copy(), TrainConfig(task="semantic", time_limit=0.5, val_fraction=0, **SMALL),
                     inbox=inbox, control=control)
    steps, paused, beats, resumed_at = [], [], 0, None
    while True:
        try:
            ev = next(gen)
        except StopIteration as done:
            result = done.value
            break
        if isinstance(ev, StepDone):
            steps.append((ev.elapsed, time.perf_counter()))
            if resumed_at is not None and len(steps) >= resumed_at + 3:
                control.stop()
        elif isinstance(ev, LivePaused):
            paused.append((ev.idle, len(steps)))
        elif ev is None and paused and resumed_at is None:
            beats += 1
            if beats == 4:  # about a second later, the user paints again
                send(inbox, labels, truth, 2, 1, seed=5)
                resumed_at = len(steps)
    assert paused and paused[0][0] >= 2.0
    assert steps[paused[0][1] - 1][0] > 0.5  # trained past the time limit, then paused itself
    before, after = steps[resumed_at - 1], steps[resumed_at]
    wall, clock = after[1] - before[1], after[0] - before[0]
    assert wall - clock >= 0.75  # the pause (four heartbeats of waiting) is not on the training clock
    assert result.steps == len(steps) and result.checkpoint["train_config"]["time_limit"] is None


def test_new_thin_classes_mid_session_reach_previews_and_the_result():
    """Two classes first; once they are learnt, a thin rim class and a texture class: all four in the result."""
    image, truth = four_classes()
    labels = np.zeros_like(truth)
    inbox, control = queue.Queue(), Control()
    gen = train_live(image, labels.copy(), TrainConfig(task="semantic", time_limit=1, val_fraction=0, **SMALL),
                     inbox=inbox, control=control)
    previews, started, new_at, sent_at = [], None, None, None
    shown = {}
    while True:
        try:
            ev = next(gen)
        except StopIteration as done:
            result = done.value
            break
        if ev is None and sent_at is None:  # waiting for strokes: the user paints two classes
            send(inbox, labels, truth, 1, 3)
            send(inbox, labels, truth, 2, 3)
            sent_at = time.perf_counter()
        elif isinstance(ev, TrainingStarted):
            started = len(previews)
        elif isinstance(ev, LivePreview):
            previews.append((time.perf_counter(), ev))
            for c in (3, 4):
                if new_at is not None and c not in shown and iou(ev.data, truth, c) > 0.3:
                    shown[c] = time.perf_counter() - new_at
        elif isinstance(ev, StepDone):
            if new_at is None and ev.step >= 40:
                send(inbox, labels, truth, 3, 4, brush=1, seed=1)  # one-pixel strokes along the rims
                send(inbox, labels, truth, 4, 3, seed=1)
                new_at = time.perf_counter()
            if new_at is not None and ev.step >= 200:
                control.stop()
    first_time, first = previews[0]
    assert started >= 1 and first.source == "pixel classifier"  # before the network is even built
    assert first_time - sent_at < 1.0
    assert iou(first.data, truth, 2) > 0.3
    assert set(shown) == {3, 4} and max(shown.values()) < 10.0, shown
    final = predict_sync(result.checkpoint, image)
    scores = {c: iou(final, truth, c) for c in (1, 2, 3, 4)}
    assert min(scores.values()) >= 0.5, scores
