"""The quality report's verdicts (benchmarks/quality/quality_stats.py): a goal is met only when the mean per-seed margin
clears it by more than its spread over the seeds, and nothing is judged on fewer than 3 seeds."""

import pytest
from benchmarks.quality import quality_stats as stats

REF = stats.REFERENCE["instance"]


def _runs(ours, ref):
    return [{"methods": {"ours": {"f1": a}, REF: {"f1": b}}} for a, b in zip(ours, ref)]


def test_a_pass_inside_the_noise_between_seeds_is_not_a_pass():
    # mean margin over ref + 0.03: +0.02, but the margins (0.02, 0.07, -0.03) spread by 0.05 across seeds
    s = stats.summarize("instance", "2d", False, _runs([0.90, 0.96, 0.88], [0.85, 0.86, 0.88]))
    (clause,) = s["clauses"]
    assert clause["margin_mean"] == pytest.approx(0.02) and clause["margin_spread"] == pytest.approx(0.05)
    assert clause["met"] is False and s["met"] is False


def test_a_clear_margin_is_met_and_every_clause_counts():
    runs = _runs([0.96, 0.97, 0.965], [0.90, 0.91, 0.905])
    assert stats.summarize("instance", "2d", False, runs)["met"] is True
    s = stats.summarize("instance", "2d", True, runs)  # complete annotations: >= 0.95 too
    assert [c["met"] for c in s["clauses"]] == [True, True]
    s = stats.summarize("instance", "2d", True, _runs([0.94, 0.95, 0.945], [0.80, 0.81, 0.80]))
    assert [c["met"] for c in s["clauses"]] == [True, False] and s["met"] is False


def test_fewer_than_three_seeds_are_not_judged():
    s = stats.summarize("instance", "2d", False, _runs([0.99, 0.99], [0.5, 0.5]))
    assert s["met"] is None and s["methods"]["ours"]["mean"] == pytest.approx(0.99)
