import numpy as np
import pytest
import torch


# One torch thread: leaves a core for Qt's main thread in GUI tests and avoids
# oversubscription (OpenMP threads spinning against each other) on a busy 2-core machine.
torch.set_num_threads(1)


@pytest.fixture
def blobs2d():
    """A small synthetic 2D image with touching round objects and its instance labels."""
    rng = np.random.default_rng(0)
    shape = (96, 96)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.uint16)
    centres = [(20, 20), (20, 45), (50, 30), (70, 70), (30, 75), (75, 20), (55, 58)]
    for i, (cy, cx) in enumerate(centres, 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 11**2] = i
    image = (labels > 0) * 200.0 + rng.normal(0, 20, shape) + 50
    return image.astype(np.float32), labels


@pytest.fixture(scope="session")
def sample_nuclei():
    from napari_bioimg._sample_data import load_nuclei_3d

    return load_nuclei_3d()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # napari's make_napari_viewer fixture reads item.rep_call after the test
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
