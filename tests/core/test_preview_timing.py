"""The first live preview comes soon after Train (FIRST_PREVIEW), the next ones every ``preview_every``."""

from napari_bioimg.core import TrainConfig, train_sync
from napari_bioimg.core import events as E
from napari_bioimg.core.training.loop import FIRST_PREVIEW


def test_first_preview_early_then_at_the_interval(blobs2d):
    image, labels = blobs2d
    seen = []
    cfg = TrainConfig(time_limit=FIRST_PREVIEW + 3, preview_every=1000, val_fraction=0, batch_size=2,
                      patch_size=32, model_config={"depth": 1, "base_channels": 4})
    res = train_sync(image, labels, cfg, callback=seen.append)
    previews = [e for e in seen if isinstance(e, E.PreviewReady)]
    assert len(previews) == 1 and previews[0].data.shape == labels.shape
    first = [h["time"] for h in res.history if h["step"] == previews[0].step][0]
    # after FIRST_PREVIEW seconds of training (the history's clock starts a few ms later), not 1000, and well
    # before the run's end (FIRST_PREVIEW + 3 s): a step takes a few ms, 1.5 s is margin for a loaded machine
    assert FIRST_PREVIEW - 0.05 <= first < FIRST_PREVIEW + 1.5


def test_a_budget_too_short_for_the_step_time_is_said_early(blobs2d):
    """Issue 16.2: a CPU that makes a handful of steps in the time limit warns after the first steps."""
    image, labels = blobs2d
    seen = []
    cfg = TrainConfig(time_limit=1.0, preview_every=0, val_fraction=0, batch_size=4, patch_size=64,
                      model_config={"depth": 2, "base_channels": 8})
    train_sync(image, labels, cfg, callback=seen.append)
    slow = [e for e in seen if isinstance(e, E.Notice) and "training is slow" in e.message]
    assert len(slow) == 1 and slow[0].level == "warning" and "time limit (1 s)" in slow[0].message
    steps = [e for e in seen if isinstance(e, E.StepDone)]
    assert seen.index(slow[0]) == seen.index(steps[4]) + 1  # right after the fifth step
    seen.clear()  # a step budget (epochs) is the user's choice: nothing to warn of
    train_sync(image, labels, TrainConfig(**dict(cfg.to_dict(), time_limit=None, epochs=1, steps_per_epoch=8)),
               callback=seen.append)
    assert not any(isinstance(e, E.Notice) and "slow" in e.message for e in seen)
