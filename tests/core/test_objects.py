"""Objects: measuring, crops at the border, painting classes, splitting and sampling."""

import numpy as np
import pytest
import torch

from napari_bioimg.core.data.objects import (
    ObjectSampler,
    choose_crop,
    measure_objects,
    object_crops,
    paint_classes,
    stratified_split,
)
from napari_bioimg.core.errors import InputError


def _labels():
    lbl = np.zeros((2, 30, 40), np.uint32)
    lbl[0, 0:6, 0:4] = 7  # touches the top-left corner
    lbl[0, 10:14, 20:30] = 3
    lbl[1, 10:20, 20:30] = 3  # the same id, larger in sample 1
    lbl[1, 25:30, 35:40] = 100_000  # a large id at the bottom-right corner
    return lbl


def test_measure_picks_largest_sample_and_bbox_centre():
    t = measure_objects(_labels())
    assert t.ids.tolist() == [3, 7, 100_000]
    assert t.sample.tolist() == [1, 0, 1]
    assert t.area.tolist() == [100, 24, 25]
    np.testing.assert_allclose(t.center[0], [15, 25])
    np.testing.assert_array_equal(t.extent[1], [6, 4])
    assert t.rows([100_000, 3]).tolist() == [2, 0]
    with pytest.raises(InputError):
        t.rows([5])


def test_measure_empty():
    t = measure_objects(np.zeros((1, 8, 8), np.uint8))
    assert len(t) == 0 and t.center.shape == (0, 2)


def test_crops_pad_at_the_border_and_carry_the_mask():
    lbl = _labels()
    img = np.random.default_rng(0).random((2, 1, 30, 40)).astype(np.float32) + 1  # > 0 everywhere
    t = measure_objects(lbl)
    crops = object_crops(img, lbl, t, np.arange(3), (12, 12))
    assert crops.shape == (3, 2, 12, 12)
    corner = crops[1]  # id 7, centre (3, 2): the crop starts at (-3, -4)
    assert np.all(corner[0, :3] == 0) and np.all(corner[0, :, :4] == 0)  # padded with the normalised low value
    np.testing.assert_array_equal(corner[0, 3:, 4:], img[0, 0, 0:9, 0:8])
    assert corner[1].sum() == 24 and set(np.unique(corner[1])) == {0.0, 1.0}
    np.testing.assert_array_equal(corner[1, 3:9, 4:8], 1)
    assert crops[0, 1].sum() == 100  # id 3 is cut from sample 1, where it is largest
    assert crops[2, 1].sum() == 25 and np.all(crops[2, 0, 9:] == 0) and np.all(crops[2, 0, :, 9:] == 0)


def test_crops_with_zoom_shrink_wide_boxes():
    lbl = _labels()
    img = np.ones((2, 1, 30, 40), np.float32)
    t = measure_objects(lbl)
    crops = object_crops(img, lbl, t, [0], (10, 10), zoom=0.5)
    assert crops.shape == (1, 2, 10, 10)
    assert crops[0, 1].sum() == pytest.approx(25, abs=1)  # 100 pixels, shrunk by 2 in each axis


def test_choose_crop_fits_objects_and_caps():
    size, zoom = choose_crop(np.array([[10, 12]] * 20), (48, 48))
    assert zoom == 1.0 and all(s % 4 == 0 and s >= 12 * 1.25 for s in size)
    size, zoom = choose_crop(np.array([[100, 50]] * 20), (48, 48))
    assert size[0] == 48 and zoom < 0.5


def test_paint_classes_makes_a_new_image():
    lbl = _labels()
    out = paint_classes(lbl, [3, 100_000], np.array([2, 5], np.uint8))
    assert out.dtype == np.uint8 and out.shape == lbl.shape
    assert set(np.unique(out[lbl == 3])) == {2} and set(np.unique(out[lbl == 100_000])) == {5}
    assert np.all(out[lbl == 7] == 0) and lbl.max() == 100_000


def test_stratified_split_keeps_scarce_classes_for_training():
    y = np.array([0] * 10 + [1] * 2 + [2] * 3)
    train, val = stratified_split(y, 0.2, np.random.default_rng(0))
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(y)
    assert np.sum(y[val] == 0) == 2 and np.sum(y[val] == 1) == 0 and np.sum(y[val] == 2) == 1
    assert len(stratified_split(y, 0.0, np.random.default_rng(0))[1]) == 0


def test_sampler_batches_and_augmentation():
    crops = np.zeros((4, 2, 14, 14), np.float32)
    crops[:, 0] = 0.5
    crops[:, 1, 5:9, 5:9] = 1
    s = ObjectSampler(crops, np.array([0, 1, 1, 0]), (10, 10), np.random.default_rng(0), image_channels=1,
                      intensity=0.2)
    x, y = s.sample(8, torch.device("cpu"))
    assert x.shape == (8, 2, 10, 10) and y.shape == (8,) and y.dtype == torch.int64
    assert set(torch.unique(x[:, 1]).tolist()) <= {0.0, 1.0}  # the mask is never rescaled
    assert not torch.allclose(x[:, 0], torch.full_like(x[:, 0], 0.5))  # intensities are
    with pytest.raises(InputError):
        ObjectSampler(crops[:0], np.zeros(0), (10, 10), np.random.default_rng(0))
