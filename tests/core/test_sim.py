"""The simulator: exact labels, reproducible scenes, anisotropic 3D, and fast enough to train from."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_bioimg.core.sim import VERSION, SimSettings, make_pool, make_scene


def _pieces(labels: np.ndarray) -> dict[int, int]:
    """Connected pieces of each label (full connectivity)."""
    out = {}
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is not None:
            out[i] = ndi.label(labels[sl] == i, structure=np.ones((3,) * labels.ndim))[1]
    return out


@pytest.mark.parametrize("shape", [(160, 160), (12, 80, 80)])
def test_every_label_is_one_connected_piece_numbered_without_gaps(shape):
    for seed in range(3):
        scene = make_scene(shape, seed)
        ids = np.unique(scene.labels)
        assert ids[0] == 0 and list(ids[1:]) == list(range(1, len(ids)))  # 1..n, no gaps, no overlap possible
        assert len(ids) - 1 == scene.params["n_objects"]
        assert set(_pieces(scene.labels).values()) <= {1}
        assert scene.image.shape == scene.labels.shape == scene.clean.shape
        assert np.isfinite(scene.image).all()


def test_objects_are_brighter_than_background_on_average():
    scene = make_scene((256, 256), 3)
    inside, outside = scene.clean[scene.labels > 0], scene.clean[scene.labels == 0]
    assert inside.mean() > outside.mean() + 2 * outside.std() / np.sqrt(outside.size)
    assert inside.mean() > np.median(outside)


def test_touching_objects_occur_in_dense_clustered_scenes():
    s = SimSettings(density=(0.6, 0.6), cluster_fraction=(0.8, 0.8))
    labels = make_scene((256, 256), 1, s).labels
    grown = ndi.grey_dilation(labels, size=3)
    touching = (grown != labels) & (labels > 0) & (grown > 0)
    assert touching.sum() > 20


def test_same_seed_same_scene_and_other_seed_other_scene():
    a, b, c = make_scene((128, 128), 7), make_scene((128, 128), 7), make_scene((128, 128), 8)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.params == b.params
    assert not np.array_equal(a.image, c.image)
    pool = make_pool(3, (64, 64), seed=5, first=10)
    np.testing.assert_array_equal(pool[1].image, make_scene((64, 64), [5, 11]).image)


def test_settings_round_trip_and_version():
    s = SimSettings(diameter=(8.0, 20.0))
    assert SimSettings.from_dict(s.to_dict()) == s
    assert VERSION


def test_3d_objects_are_flatter_in_z_pixels_when_anisotropic():
    flat = SimSettings(anisotropy=(4.0, 4.0), elongation=(1.0, 1.0), deformation=(0.0, 0.0),
                       diameter=(24.0, 24.0), dividing_fraction=(0.0, 0.0), density=(0.1, 0.1))
    iso = SimSettings(anisotropy=(1.0, 1.0), elongation=(1.0, 1.0), deformation=(0.0, 0.0),
                      diameter=(24.0, 24.0), dividing_fraction=(0.0, 0.0), density=(0.1, 0.1))

    def ratio(settings):
        labels = make_scene((40, 80, 80), 2, settings).labels
        spans = [(sl[0].stop - sl[0].start) / (sl[1].stop - sl[1].start)
                 for sl in ndi.find_objects(labels) if sl is not None]
        return float(np.median(spans))

    assert make_scene((40, 80, 80), 2, flat).params["anisotropy"] == 4.0
    assert ratio(flat) < 0.45 < 0.6 < ratio(iso)


def test_scene_sizes_follow_the_settings():
    small = make_scene((256, 256), 0, SimSettings(diameter=(10.0, 10.0), dividing_fraction=(0.0, 0.0)))
    big = make_scene((256, 256), 0, SimSettings(diameter=(40.0, 40.0), dividing_fraction=(0.0, 0.0)))

    def median_diameter(labels):
        areas = np.bincount(labels.ravel())[1:]
        return float(np.median(2 * np.sqrt(areas[areas > 0] / np.pi)))

    assert 6 < median_diameter(small.labels) < 14
    assert 28 < median_diameter(big.labels) < 50


def test_a_2d_scene_is_fast():
    make_scene((256, 256), 0)
    start = time.process_time()  # CPU time: other processes on a busy machine do not count
    for seed in range(5):
        make_scene((256, 256), seed)
    assert (time.process_time() - start) / 5 < 0.3  # ~0.05 s on an idle core
