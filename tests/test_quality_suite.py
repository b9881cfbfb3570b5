"""The quality suite's data and splits (benchmarks/suite.py): every entry loads from the repository, and no
entry trains and scores on the same pixels."""

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
suite = pytest.importorskip("suite")


@pytest.mark.parametrize("name", list(suite.ENTRIES))
def test_entry_loads_and_is_split(name):
    e = suite.ENTRIES[name]
    data = suite.load(e)
    assert data.train and data.test
    nd = len(e.axes)
    for img, truth in data.test:
        assert img.ndim == nd or e.task == "classify"
        assert truth is not None and truth.shape == img.shape
    if e.task in ("instance", "semantic"):
        for img, lbl in data.train:
            assert lbl.shape == img.shape and lbl.any()
            # no training image is (a copy of) a test image
            assert all(img.shape != t.shape or not np.array_equal(img, t) for t, _ in data.test)
    if e.task == "classify":
        assert not set(data.extra["train_ids"]) & set(data.extra["test_ids"])
        assert len(set(data.extra["test_classes"])) == 4


def test_every_data_file_is_documented():
    readme = (BENCH / "data" / "README.md").read_text()
    for f in (BENCH / "data").glob("*.tif"):
        assert f"`{f.name}`" in readme, f.name


def test_strokes_are_sparse_and_agree_with_the_truth():
    img, lbl = suite.load(suite.ENTRIES["nuclei2d-dsb"]).train[0]
    strokes = suite.strokes_from_truth(lbl)
    assert set(np.unique(strokes)) == {0, 1, 2}
    assert (strokes > 0).mean() < 0.2
    assert np.all(lbl[strokes == 2] > 0) and np.all(lbl[strokes == 1] == 0)
