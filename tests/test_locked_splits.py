"""The quality suite's locked protocol (benchmarks/quality/suite.py): every entry has train, tune and test parts that
never share a pixel, no entry's tune or training pixels are another entry's test pixels, and the test split
is read only by the report (``quality.py --report``), never by the tools that explore recipes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from benchmarks.common import ROOT, child_env
from benchmarks.quality import suite


def _shape(key):
    import tifffile

    with tifffile.TiffFile(suite.SOURCES[key][0]) as f:
        return f.series[0].shape


def _masks(parts, shape):
    out = {}
    for part, indices in parts.items():
        m = np.zeros(shape, bool)
        for ix in indices:
            m[ix] = True
        out[part] = m
    return out


@pytest.mark.parametrize("name", list(suite.ENTRIES))
def test_each_entry_has_a_tune_and_a_locked_test_part_that_share_no_pixel(name):
    key, parts = suite.SPLITS[name]
    assert {"tune", "test"} <= set(parts)
    masks = _masks(parts, _shape(key))
    for a in masks:
        assert masks[a].any(), f"{name}: empty {a} part"
        for b in masks:
            if a < b:
                assert not (masks[a] & masks[b]).any(), f"{name}: {a} and {b} share pixels"


def test_no_entry_trains_or_tunes_on_another_entrys_test_pixels():
    for key in suite.SOURCES:
        shape, seen, test = _shape(key), None, None
        for k, parts in suite.SPLITS.values():
            if k != key:
                continue
            m = _masks(parts, shape)
            used = m.get("train", np.zeros(shape, bool)) | m["tune"]
            seen = used if seen is None else seen | used
            test = m["test"] if test is None else test | m["test"]
        if seen is not None:
            assert not (seen & test).any(), f"{key}: some test pixels are trained or tuned on by an entry"


def test_denoising_tune_and_test_differ_in_image_and_noise():
    e = suite.ENTRIES["denoise-nuclei-gauss-high"]
    tune = suite.load(e, "tune")
    suite.unlock_for_report()
    try:
        test = suite.load(e, "test", seed=0)
        again = suite.load(e, "test", seed=1)
    finally:
        suite._state["report"] = False
    assert not np.array_equal(tune.test[0][1], test.test[0][1])  # other clean pixels
    assert suite.NOISE_SEED["test"] != suite.NOISE_SEED["tune"]
    assert not np.array_equal(test.test[0][0], again.test[0][0])  # each report seed draws its own noise
    assert np.array_equal(test.test[0][1], again.test[0][1])


def test_the_test_split_is_locked_unless_reporting():
    e = suite.ENTRIES["nuclei2d-dsb"]
    with pytest.raises(suite.LockedSplitError, match="--report"):
        suite.load(e, "test")
    assert suite.load(e).test[0][0].shape == (128, 512)  # the default is the tune split


@pytest.mark.parametrize("tool", ["recipe_lab", "recipe_experiments"])
def test_recipe_tools_refuse_to_read_the_test_split(tool):
    code = (f"from benchmarks.experiments import {tool}\nfrom benchmarks.quality import suite\n"
            "e = suite.ENTRIES['nuclei2d-dsb']\n"
            "for attempt in (lambda: suite.unlock_for_report(), lambda: suite.load(e, 'test')):\n"
            "    try:\n        attempt()\n    except suite.LockedSplitError:\n        continue\n"
            "    raise SystemExit('read the test split')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=child_env())
    assert res.returncode == 0, res.stdout + res.stderr


def test_quality_probe_refuses_a_locked_test_run(tmp_path):
    from benchmarks.experiments import quality_probe

    (tmp_path / "split.json").write_text(json.dumps({"split": "test"}))
    with pytest.raises(suite.LockedSplitError):
        quality_probe.refuse_locked(tmp_path)
    (tmp_path / "split.json").unlink()
    with pytest.raises(suite.LockedSplitError):  # a folder that does not say which split it holds
        quality_probe.refuse_locked(tmp_path)
    (tmp_path / "split.json").write_text(json.dumps({"split": "tune"}))
    quality_probe.refuse_locked(tmp_path)
