"""The end of a timed run inside its time limit: the time limit is the user's clock, so the trainer keeps back
the seconds that the final validation and the calibration (:mod:`.calibrate`) will take, and the calibration
search stops at the limit.

The last training step must end before the end begins: the mean step time is kept back too. The cost of
the end is estimated from the last validation (a first one is timed after the first step), in
two parts: running the model on the held-apart regions (``infer``) and post-processing + scoring them once
(``score``). The calibration runs the model on its regions (the validation regions and, within a pixel budget,
annotated training samples: ``ratio`` times the validation pixels) and scores a few dozen settings there. The
reserve pays for the final validation and a calibration on up to :data:`CALIBRATION_SHARE` times the
validation pixels with :data:`SEARCH_RUNS` settings scored; when the end comes the calibration takes the
regions that fit in the time left (:meth:`EndReserve.fit`) and its search (an anytime coordinate search)
keeps the best settings found when the limit comes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

#: Scoring runs of the calibration search paid for in advance (the search stops at the limit either way).
SEARCH_RUNS = 12
#: Calibration pixels paid for in advance, as a multiple of the validation pixels.
CALIBRATION_SHARE = 3.0
#: Share of the time limit kept for building the model file (and for the last search run's overshoot).
SAFETY = 0.01
#: The reserve never takes more than this share of the time limit: training comes first.
MOST = 0.5


def region_pixels(regions) -> int:
    """Pixels (voxels) inside the regions' boxes."""
    return int(sum(math.prod(b.stop - b.start for b in r.box) for r in regions))


class EndReserve:
    """Seconds kept back at the end of a run with a time limit (``time_limit`` ``None``: nothing is kept)."""

    def __init__(self, time_limit: float | None, val_pixels: int, calibration_pixels: int):
        self.time_limit = time_limit
        self.val_pixels = val_pixels
        self.ratio = calibration_pixels / val_pixels if val_pixels and calibration_pixels else 0.0
        self.infer = self.score = None
        self.step_seconds = 0.0  # the run's mean step time: a step begun just before the limit must end by it

    def observe(self, infer: float, score: float) -> None:
        """The cost of the last validation: the model on the held-apart data, and scoring it once."""
        self.infer, self.score = infer, score

    def probe(self, validate: Callable[[], object]) -> None:
        """Time one validation now (its result is not used) unless one has been timed: a short or slow run
        must know the end's cost before its first epoch ends."""
        if self.time_limit and self.infer is None:
            validate()

    def scored(self, started: float, score: Callable[[], object]):
        """``score()``, the validation's post-processing and scoring after its model run that began at
        ``started`` (perf_counter); both parts timed."""
        inferred = time.perf_counter()
        result = score()
        self.observe(inferred - started, time.perf_counter() - inferred)
        return result

    def timed(self, started: float, result):
        """``result`` of a validation that began at ``started`` (perf_counter) and scored as it ran."""
        self.observe(time.perf_counter() - started, 0.0)
        return result

    def seconds(self) -> float:
        if not self.time_limit:
            return 0.0
        end = 0.0
        if self.infer is not None:
            share = min(self.ratio, CALIBRATION_SHARE)
            end = self.infer + self.score + share * (self.infer + SEARCH_RUNS * self.score)
        return min(end + self.step_seconds + SAFETY * self.time_limit, MOST * self.time_limit)

    def fit(self, regions: list, n_first: int, elapsed: float) -> list:
        """The calibration regions whose model run and search fit in the time left: the first ``n_first``
        (the validation regions) always, then the others evenly spread."""
        if not self.time_limit or self.infer is None or len(regions) <= n_first:
            return regions
        per_pixel = (self.infer + SEARCH_RUNS * self.score) / max(self.val_pixels, 1)
        left = self.time_limit * (1 - SAFETY) - elapsed - per_pixel * region_pixels(regions[:n_first])
        rest = regions[n_first:]
        size = region_pixels(rest) / len(rest)
        k = int(max(0.0, left) / max(per_pixel * size, 1e-12))
        if k >= len(rest):
            return regions
        picks = sorted({round(i * (len(rest) - 1) / max(k - 1, 1)) for i in range(k)}) if k else []
        return regions[:n_first] + [rest[i] for i in picks]

    def training_seconds(self) -> float | None:
        """The part of the time limit that training steps may use."""
        return None if not self.time_limit else self.time_limit - self.seconds()

    def stop(self, elapsed: Callable[[], float]) -> Callable[[], bool] | None:
        """For the calibration search: true once the clock is within :data:`SAFETY` of the limit."""
        if not self.time_limit:
            return None
        limit = self.time_limit * (1 - SAFETY)
        return lambda: elapsed() >= limit
