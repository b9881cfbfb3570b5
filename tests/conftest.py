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


def make_objects2d(seed: int = 0, shape=(100, 140), spacing: int = 20):
    """Synthetic 2D objects on a grid, three visible classes: bright round, dim round, bright elongated.

    Returns the image, the object labels and ``{id: class}`` for every object. The grid
    starts at the image edge, so some objects are cut by the border.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = rng.normal(100, 8, shape)
    labels = np.zeros(shape, dtype=np.uint16)
    truth = {}
    k = 0
    for cy in range(4, shape[0], spacing):
        for cx in range(6, shape[1], spacing):
            k += 1
            kind = ["round", "dim", "long"][int(rng.integers(3))]
            cy2, cx2 = cy + rng.integers(-2, 3), cx + rng.integers(-2, 3)
            if kind == "long":
                a, b = (7.5, 3.0) if rng.random() < 0.5 else (3.0, 7.5)
            else:
                a = b = 5.0
            mask = ((yy - cy2) / a) ** 2 + ((xx - cx2) / b) ** 2 < 1
            labels[mask] = k
            image[mask] += 60 if kind == "dim" else 160
            truth[k] = kind
    return image.astype(np.float32), labels, truth


@pytest.fixture
def objects2d():
    return make_objects2d()


def _blobs(shape, centres, radius, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, dtype=np.uint16)
    for i, (cy, cx) in enumerate(centres, 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < radius**2] = i
    image = (labels > 0) * 200.0 + rng.normal(0, 20, shape) + 50
    return image.astype(np.float32), labels


@pytest.fixture(scope="session")
def blob_model():
    """A small instance model trained (20 steps) on synthetic blobs: a real checkpoint, quick to make."""
    from napari_bioimg.core import TrainConfig, train_sync

    image, labels = _blobs((96, 96), [(20, 20), (20, 45), (50, 30), (70, 70), (30, 75), (75, 20), (55, 58)], 11, 0)
    cfg = TrainConfig(task="instance", epochs=1, steps_per_epoch=20, time_limit=None, val_fraction=0,
                      model_config={"depth": 1, "base_channels": 8}, batch_size=4, patch_size=48,
                      learning_rate=1e-2, preview_every=0)
    return train_sync(image, labels, cfg).checkpoint


@pytest.fixture
def blob_field():
    """A 200x232 field of 36 blobs on a grid, many crossing 64-pixel block borders."""
    centres = [(18 + 34 * i + (j % 2) * 6, 16 + 40 * j) for i in range(6) for j in range(6) if 16 + 40 * j < 225]
    return _blobs((200, 232), centres, 11, 1)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # napari's make_napari_viewer fixture reads item.rep_call after the test
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
