"""The pace of a training run: how often it previews, and when it says that it is too slow to be useful."""

from __future__ import annotations

from collections.abc import Iterator

from ..events import Notice

#: After SLOW_CHECK steps the step time is known: a time budget that buys fewer than SLOW_STEPS is warned of.
SLOW_CHECK, SLOW_STEPS = 5, 100
#: A preview slower than SLOW_PREVIEW seconds (a 3D stack on a CPU) comes at most every PREVIEW_SHARE times its cost.
SLOW_PREVIEW, PREVIEW_SHARE = 1.0, 4


def preview_wait(every: float, cost: float) -> float:
    """Seconds between previews: ``every``, or PREVIEW_SHARE times the last preview's ``cost`` when it was slow."""
    return every if cost < SLOW_PREVIEW else max(every, PREVIEW_SHARE * cost)


def slow_notice(steps_per_second: float, time_limit: float) -> Iterator[Notice]:
    """A warning when ``time_limit`` seconds buy fewer than SLOW_STEPS steps at ``steps_per_second``."""
    expected = int(steps_per_second * time_limit)
    if expected < SLOW_STEPS:
        yield Notice(f"training is slow here: {1 / max(steps_per_second, 1e-9):.1f} s per step, so about {expected} "
                     f"steps fit in the time limit ({time_limit:g} s) where a usable model needs a few hundred: give "
                     "it more time, a GPU, or a smaller patch or batch", "warning")
