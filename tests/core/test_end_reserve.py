"""The end of a timed run (final validation, calibration) is paid for inside the time limit (training/reserve)."""

from napari_bioimg.core.data.patches import ValRegion
from napari_bioimg.core.tasks.calibration import coordinate_search
from napari_bioimg.core.training.reserve import MOST, SAFETY, SEARCH_RUNS, EndReserve


def _regions(n, side=10):
    return [ValRegion(i, (slice(0, side), slice(0, side))) for i in range(n)]


def test_the_reserve_pays_for_the_last_step_the_final_validation_and_a_calibration():
    r = EndReserve(100.0, val_pixels=100, calibration_pixels=200)
    assert r.seconds() == SAFETY * 100  # nothing timed yet
    r.observe(infer=1.0, score=0.1)
    r.step_seconds = 0.5
    expected = 0.5 + 1.1 + 2 * (1.0 + SEARCH_RUNS * 0.1) + SAFETY * 100
    assert abs(r.seconds() - expected) < 1e-9
    assert abs(r.training_seconds() - (100 - expected)) < 1e-9
    r.observe(infer=80.0, score=1.0)  # an end dearer than the budget: training still gets its share
    assert r.seconds() == MOST * 100
    assert EndReserve(None, 100, 200).training_seconds() is None  # a step budget keeps nothing back


def test_calibration_takes_the_regions_that_fit_the_time_left_validation_regions_first():
    regions = _regions(11)
    r = EndReserve(100.0, val_pixels=100, calibration_pixels=1100)
    r.observe(infer=1.0, score=0.0)  # 0.01 s per pixel: the first region 1 s, each other one 1 s
    assert r.fit(regions, 1, elapsed=0.0) == regions  # time for all
    kept = r.fit(regions, 1, elapsed=100 * (1 - SAFETY) - 1 - 4.5)  # 4.5 s left after the first region: 4 more
    assert kept[0] is regions[0] and len(kept) == 5
    assert [k.sample for k in kept[1:]] == [1, 4, 7, 10]  # evenly spread over the others
    assert r.fit(regions, 1, elapsed=100.0) == regions[:1]  # no time left: the validation regions only


def test_the_calibration_search_keeps_the_best_found_when_told_to_stop():
    calls = []

    def score(s):
        calls.append(s)
        return -abs(s["t"] - 0.7)

    best, _ = coordinate_search(score, {"t": 0.5}, {"t": (0.3, 0.5, 0.7, 0.9)})
    assert best == {"t": 0.7}
    calls.clear()
    best, _ = coordinate_search(score, {"t": 0.5}, {"t": (0.3, 0.5, 0.7, 0.9)}, stop=lambda: len(calls) >= 2)
    assert best == {"t": 0.5} and len(calls) == 2  # the start and one more setting, then the limit
