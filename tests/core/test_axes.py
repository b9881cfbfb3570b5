import numpy as np
import pytest

from napari_bioimg.core.data.axes import infer_axes, make_layout
from napari_bioimg.core.errors import InputError


@pytest.mark.parametrize("axes, shape, dims", [("YX", (20, 30), 2), ("TYX", (4, 20, 30), 2), ("ZYX", (5, 20, 30), 3),
                                              ("ZYX", (5, 20, 30), 2), ("YXC", (20, 30, 3), 2),
                                              ("TCZYX", (2, 3, 5, 8, 9), 3)])
def test_round_trip(axes, shape, dims):
    img = np.arange(np.prod(shape)).reshape(shape)
    lay = make_layout(shape, axes, dims)
    can = lay.to_canonical(img)
    assert can.ndim == 2 + dims
    assert can.shape[1] == lay.n_channels
    if "C" not in axes:
        back = lay.from_canonical(can[:, 0])
        np.testing.assert_array_equal(back, img)
    lbl = np.zeros(lay.output_shape)
    assert lay.labels_to_canonical(lbl).shape == (lay.n_samples, *lay.spatial_shape)


def test_errors_are_clear():
    with pytest.raises(InputError, match="3D model needs a Z axis"):
        make_layout((20, 30), "YX", 3)
    with pytest.raises(InputError, match="name 2 axes"):
        make_layout((3, 20, 30), "YX")
    lay = make_layout((20, 30), "YX")
    with pytest.raises(InputError, match="does not match"):
        lay.labels_to_canonical(np.zeros((21, 30)))


def test_infer():
    assert infer_axes((20, 30)) == "YX"
    assert infer_axes((20, 30, 3)) == "YXC"
    assert infer_axes((7, 20, 30)) == "ZYX"
    assert infer_axes((7, 20, 30), hint="TYX") == "TYX"
