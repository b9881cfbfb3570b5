"""The quality suite's data and splits (benchmarks/quality/suite.py): every entry loads from the repository, and no
entry trains and scores on the same pixels."""

import numpy as np
import pytest
from benchmarks.common import DATA
from benchmarks.quality import suite  # a suite that does not import is a failure here, not a skip

PATCH = 8


def _planes(a: np.ndarray) -> np.ndarray:
    """The array as a stack of 2D planes (its last two axes), as float64 so that dtypes compare by value."""
    return np.asarray(a, np.float64).reshape(-1, *a.shape[-2:])


def _mix(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: every input bit reaches every output bit (uint64 arrays wrap silently)."""
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def _window_keys(planes: np.ndarray) -> np.ndarray:
    """A 64-bit key of every PATCH x PATCH window of every plane, ``(n, h - PATCH + 1, w - PATCH + 1)``: a
    polynomial hash of its mixed values (equal windows have equal keys; others collide with odds ~2^-64)."""
    bits = _mix(np.ascontiguousarray(planes).view(np.uint64))
    n, h, w = bits.shape
    rows = np.zeros((n, h, w - PATCH + 1), np.uint64)
    for k in range(PATCH):
        rows = rows * np.uint64(1_000_003) + bits[:, :, k: w - PATCH + 1 + k]
    rows = _mix(rows)
    keys = np.zeros((n, h - PATCH + 1, w - PATCH + 1), np.uint64)
    for k in range(PATCH):
        keys = keys * np.uint64(998_244_353) + rows[:, k: h - PATCH + 1 + k]
    return keys


def _probes(a: np.ndarray, step: int = 32) -> np.ndarray:
    """Keys of PATCH x PATCH pieces of ``a`` along the four edges of its planes and through their middle
    (a split moved across a cut shares pixels at the edge of the other part). Flat pieces (padding,
    saturation) are left out: they can occur anywhere by chance."""
    planes = _planes(a)
    n, h, w = planes.shape
    h, w = h - PATCH + 1, w - PATCH + 1  # where a piece can start
    lines_y, lines_x = (0, h // 2, h - 1), (0, w // 2, w - 1)
    spots = sorted({(y, x) for y in lines_y for x in range(0, w, step)} |
                   {(y, x) for x in lines_x for y in range(0, h, step)})
    pieces = np.array([planes[z, y: y + PATCH, x: x + PATCH] for z in range(n) for y, x in spots])
    textured = [len(np.unique(p)) >= PATCH for p in pieces]
    return _window_keys(pieces[textured]).ravel()


def _shared_pixels(train: list[np.ndarray], test: list[np.ndarray], content: bool = True) -> str | None:
    """What the training arrays share with the test arrays: memory (views of one file that overlap) or,
    with ``content``, values (a piece of a test image found in a training image, a copy included);
    ``None`` if nothing."""
    for i, a in enumerate(train):
        for j, b in enumerate(test):
            if np.shares_memory(a, b):
                return f"training array {i} overlaps test array {j} in memory"
    if not content:
        return None
    seen = np.sort(np.concatenate([_window_keys(_planes(a)).ravel() for a in train]))
    for j, b in enumerate(test):
        probes = _probes(b)
        assert len(probes) >= 8, f"test image {j}: too few textured pieces to look for"
        at = np.minimum(np.searchsorted(seen, probes), len(seen) - 1)
        if (seen[at] == probes).any():
            return f"a piece of test image {j} occurs in a training image"
    return None


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
        # no pixel scored is trained on: neither the images (by memory and by value) nor the annotations
        assert _shared_pixels([a for pair in data.train for a in pair], [a for pair in data.test for a in pair],
                              content=False) is None
        assert _shared_pixels([img for img, _ in data.train], [img for img, _ in data.test]) is None
    if e.task == "denoise":
        # self-supervised on the noisy images; the clean images it is scored against are never trained on
        assert all(target is None for _, target in data.train)
        assert _shared_pixels([img for img, _ in data.train], [clean for _, clean in data.test]) is None
    if e.task == "classify":
        train_ids, test_ids = set(data.extra["train_ids"]), set(data.extra["test_ids"])
        assert not train_ids & test_ids
        assert len(set(data.extra["test_classes"])) == 4
        # the objects trained on and those scored lie in different frames
        (img, objects), = data.train
        frames = [set(np.unique(objects[t]).tolist()) for t in range(len(objects))]
        train_frames = {t for t, ids in enumerate(frames) if ids & train_ids}
        test_frames = {t for t, ids in enumerate(frames) if ids & test_ids}
        assert train_frames and test_frames and not train_frames & test_frames


def test_the_guard_sees_a_shifted_split_and_a_copy():
    """The check above finds pixels shared by views that overlap and by copies, not only equal arrays."""
    img = suite.load(suite.ENTRIES["nuclei2d-dsb"]).train[0][0]
    full = np.concatenate([img, img[::-1]])  # 512 rows, like the entry's source
    assert _shared_pixels([full[:256]], [full[256:]]) is None
    assert _shared_pixels([full[:280]], [full[256:]]) is not None  # 24 rows shared, the shapes differ
    assert _shared_pixels([full[:280].copy()], [full[256:].copy()]) is not None  # the same, as copies
    vol = np.stack([full[:, :256]] * 4)
    assert _shared_pixels([vol[:, :, :140].copy()], [vol[:, :, 128:].copy()]) is not None  # a 3D cut along X


def test_every_data_file_is_documented():
    readme = (DATA / "README.md").read_text()
    for f in DATA.glob("*.tif"):
        assert f"`{f.name}`" in readme, f.name


def test_strokes_are_sparse_and_agree_with_the_truth():
    img, lbl = suite.load(suite.ENTRIES["nuclei2d-dsb"]).train[0]
    strokes = suite.strokes_from_truth(lbl)
    assert set(np.unique(strokes)) == {0, 1, 2}
    assert (strokes > 0).mean() < 0.2
    assert np.all(lbl[strokes == 2] > 0) and np.all(lbl[strokes == 1] == 0)
