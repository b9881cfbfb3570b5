"""Resume across sessions, fine-tuning with a continuing history, and pause-aware budgets."""

import time

import numpy as np
import pytest
import torch

from napari_bioimg.core import Control, TrainConfig, train, train_sync
from napari_bioimg.core import events as E
from napari_bioimg.core.control import ActiveClock
from napari_bioimg.core.errors import CheckpointError, ConfigError
from napari_bioimg.core.formats.checkpoint import load_checkpoint, save_checkpoint

TINY = dict(model_config={"depth": 2, "base_channels": 8}, batch_size=2, patch_size=32, steps_per_epoch=3,
            learning_rate=5e-3, preview_every=0, time_limit=None, epochs=4)


def run_until(image, labels, config, stop_at=None, **kwargs):
    """Drain ``train``; stop after global step ``stop_at``; return (result, step events)."""
    control = Control()
    gen = train(image, labels, config, control=control, preview_index=None, **kwargs)
    steps = []
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            return stop.value, steps
        if isinstance(ev, E.StepDone):
            steps.append(ev)
            if stop_at is not None and ev.step == stop_at:
                control.stop()


def weights_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.fixture(scope="module")
def blobs():
    """Round touching objects on a noisy background, with their instance labels (module-wide)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:96, :96]
    labels = np.zeros((96, 96), np.uint16)
    for i, (cy, cx) in enumerate([(20, 20), (22, 46), (50, 30), (70, 70), (30, 75), (75, 20), (55, 58)], 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 11**2] = i
    image = ((labels > 0) * 200.0 + rng.normal(0, 20, labels.shape) + 50).astype(np.float32)
    return image, labels


@pytest.fixture(scope="module")
def uninterrupted(blobs):
    return run_until(*blobs, TrainConfig(**TINY))


@pytest.mark.parametrize("stop_at", [6, 7])  # at an epoch boundary (validation step) and mid-epoch
def test_resumed_run_matches_uninterrupted(blobs, tmp_path, stop_at, uninterrupted):
    image, labels = blobs
    config = TrainConfig(**TINY)
    full, full_steps = uninterrupted
    assert full.steps == 12 and full.checkpoint["resume"]["finished"]

    first, _ = run_until(image, labels, config, stop_at=stop_at)
    assert first.stopped_early and first.steps == stop_at
    path = save_checkpoint(first.checkpoint, tmp_path / "half.pt")
    torch.manual_seed(1234)  # another session: global random state is anything
    np.random.default_rng(99).random(10)
    resumed, resumed_steps = run_until(image, labels, None, resume=load_checkpoint(path))

    assert [s.step for s in resumed_steps] == list(range(stop_at + 1, 13))
    full_losses = [s.loss for s in full_steps]
    assert [s.loss for s in resumed_steps] == pytest.approx(full_losses[stop_at:], rel=1e-5, abs=1e-7)
    assert [h["loss"] for h in resumed.history] == pytest.approx(full_losses, rel=1e-5, abs=1e-7)
    assert [s.learning_rate for s in resumed_steps] == pytest.approx([s.learning_rate for s in full_steps[stop_at:]])
    last = resumed.checkpoint.get("last_state_dict") or resumed.checkpoint["state_dict"]
    weights_equal(last, full.checkpoint.get("last_state_dict") or full.checkpoint["state_dict"])
    assert resumed.checkpoint["resume"]["finished"] and not resumed.stopped_early
    if stop_at % TINY["steps_per_epoch"] == 0:  # same validation points: same best model
        assert resumed.checkpoint["training"]["best_step"] == full.checkpoint["training"]["best_step"]
        weights_equal(resumed.checkpoint["state_dict"], full.checkpoint["state_dict"])


def test_checkpoint_keeps_best_and_last(uninterrupted):
    ck = uninterrupted[0].checkpoint
    best = ck["training"]["best_step"]
    assert best is not None and "best_score" in ck["metrics"]
    assert ck["resume"]["best_step"] == best and ck["resume"]["step"] == 12
    if best != 12:  # state_dict = best by validation, last_state_dict = after the final step
        assert "last_state_dict" in ck
        assert any(not torch.equal(ck["state_dict"][k], ck["last_state_dict"][k]) for k in ck["state_dict"])
    else:
        assert "last_state_dict" not in ck


def test_finished_run_needs_more_budget_and_can_be_extended(blobs):
    image, labels = blobs
    res, _ = run_until(image, labels, TrainConfig(**dict(TINY, epochs=1)))
    with pytest.raises(ConfigError, match="whole budget"):
        run_until(image, labels, None, resume=res.checkpoint)
    more, steps = run_until(image, labels, TrainConfig(**dict(TINY, epochs=2)), resume=res.checkpoint)
    assert [s.step for s in steps] == [4, 5, 6] and more.steps == 6 and len(more.history) == 6


def test_resume_warns_on_other_data_and_refuses_exported_files(blobs):
    image, labels = blobs
    res, _ = run_until(image, labels, TrainConfig(**TINY), stop_at=3)
    notices = []
    gen = train(image, labels[::-1].copy(), None, resume=res.checkpoint, preview_index=None)
    for ev in gen:
        if isinstance(ev, E.Notice):
            notices.append(ev.message)
        if isinstance(ev, E.StepDone):
            break
    gen.close()
    assert any("differ from the checkpoint" in m for m in notices)
    stripped = {k: v for k, v in res.checkpoint.items() if k != "resume"}
    with pytest.raises(CheckpointError, match="no training state"):
        run_until(image, labels, None, resume=stripped)


def test_fine_tune_continues_history(blobs):
    image, labels = blobs
    base, _ = run_until(image, labels, TrainConfig(**dict(TINY, epochs=1)))
    corrected = labels.copy()
    corrected[corrected == 3] = 0  # the user removed a wrong object
    seen = []
    tuned = train_sync(image, corrected, TrainConfig(**dict(TINY, epochs=1)), init_checkpoint=base.checkpoint,
                       preview_index=None, callback=seen.append)
    started = next(e for e in seen if isinstance(e, E.TrainingStarted))
    assert started.start_step == 3
    assert [h["step"] for h in tuned.history] == [1, 2, 3, 4, 5, 6]
    assert [h["loss"] for h in tuned.history[:3]] == [h["loss"] for h in base.history]
    # a new budget: warm-up starts again at the first fine-tuning step
    steps = [e for e in seen if isinstance(e, E.StepDone)]
    assert steps[0].step == 4 and steps[0].learning_rate < steps[1].learning_rate


def test_active_clock_leaves_out_suspended_time():
    clock = ActiveClock(offset=2.0)
    clock.start()
    time.sleep(0.05)
    clock.stop()
    time.sleep(0.3)  # "paused"
    assert 2.04 <= clock.elapsed() < 2.25


def test_time_budget_excludes_paused_time(blobs):
    """A consumer that holds the generator (napari's paused worker) does not use up the budget."""
    image, labels = blobs
    config = TrainConfig(**dict(TINY, epochs=None, time_limit=1.0, model_config={"depth": 1, "base_channels": 4},
                                patch_size=16, batch_size=1, val_fraction=0))
    gen = train(image, labels, config, preview_index=None)
    paused = 0.0
    steps = []
    t0 = time.perf_counter()
    for ev in gen:
        if isinstance(ev, E.StepDone):
            steps.append(ev)
            if len(steps) <= 5:
                time.sleep(0.3)  # 1.5 s held in total, longer than the whole budget
                paused += 0.3
    wall = time.perf_counter() - t0
    assert len(steps) > 5  # a wall-clock budget would have ended during the pauses
    assert steps[-1].elapsed < 1.0 + 0.5 and steps[-1].fraction == pytest.approx(1.0, abs=0.5)
    assert steps[-1].elapsed <= wall - paused + 0.05
