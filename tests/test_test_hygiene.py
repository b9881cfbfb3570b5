"""Tests that can fail: no fixed sleeps as synchronisation in the GUI tests, no score checked only for ``>= 0``.

A GUI test waits on a condition (``qtbot.waitUntil``), a signal (``qtbot.waitSignal``) or the events already
queued (``conftest.settle``), never on the clock: a fixed wait is too short on a loaded machine and wasted
time on an idle one. A score that is ``>= 0`` by construction checks nothing.
"""

import ast
import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SCORE = re.compile(r"f1|psnr|ssim|accuracy|score|iou|dice|\bap\b|mean_ap|precision|recall|quality|gain", re.I)


def fixed_waits(source: str) -> list[str]:
    """``qtbot.wait(...)``, ``QTest.qWait(...)``, ``time.sleep(...)`` and ``sleep(...)`` calls in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
        if (name == "wait" and owner == "qtbot") or name in ("qWait", "sleep"):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def trivial_score_bounds(source: str) -> list[str]:
    """``assert <score> >= 0`` (or ``0 <= <score>`` alone): true of every score."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare) or len(node.ops) != 1:
            continue
        left, op, right = node.left, node.ops[0], node.comparators[0]
        zero = [side for side, other in ((right, left), (left, right)) if isinstance(side, ast.Constant)
                and side.value == 0 and SCORE.search(ast.unparse(other))]
        if zero and ((isinstance(op, ast.GtE) and zero[0] is right) or (isinstance(op, ast.LtE) and zero[0] is left)):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_fixed_waits_in_the_gui_tests():
    found = {p.name: w for p in sorted((TESTS / "gui").glob("*.py")) if (w := fixed_waits(p.read_text()))}
    assert not found, f"wait on a condition or a signal instead: {found}"


def test_no_score_is_checked_only_for_being_non_negative():
    found = {str(p.relative_to(TESTS)): b for p in sorted(TESTS.rglob("*.py")) if p.name != Path(__file__).name
             and (b := trivial_score_bounds(p.read_text()))}
    assert not found, f"compare with a baseline or the truth instead: {found}"


def test_the_scans_find_what_they_look_for():
    waits = fixed_waits("qtbot.wait(1500)\nqtbot.waitUntil(f, timeout=9)\ntime.sleep(0.2)\nQTest.qWait(5)\n"
                        "with qtbot.waitSignal(s):\n    pass\n")
    assert [w.split(":")[0] for w in waits] == ["line 1", "line 3", "line 4"]
    bounds = trivial_score_bounds("assert res.metrics['f1@0.5'] >= 0\nassert 0 <= psnr_gain\n"
                                  "assert out.min() >= 0\nassert score >= 0.7\nassert -1 <= ssim <= 1\n")
    assert [b.split(":")[0] for b in bounds] == ["line 1", "line 2"]
