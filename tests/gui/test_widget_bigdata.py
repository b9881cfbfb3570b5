"""Journey 5 (big data): a lazily opened zarr image is predicted block by block and shown lazily; Stop cancels."""

import time

import numpy as np
import zarr

from napari_bioimg.core import predict_sync
from napari_bioimg.core.formats.checkpoint import save_checkpoint

from .conftest import choose_file, ours, wait_idle


def _lazy_layer(viewer, blob_field, tmp_path):
    import dask.array as da

    image, _ = blob_field
    store = zarr.create_array(store=str(tmp_path / "big.zarr"), shape=image.shape, chunks=(64, 64), dtype="float32")
    store[...] = image
    return viewer.add_image(da.from_zarr(store), name="big", scale=(2.0, 2.0)), image


def test_big_zarr_image_predicts_lazily(viewer, widget, qtbot, tmp_path, blob_model, blob_field, monkeypatch):
    layer, image = _lazy_layer(viewer, blob_field, tmp_path)
    choose_file(monkeypatch, "getOpenFileName", save_checkpoint(blob_model, tmp_path / "m.pt"))
    widget.files.load_btn.native.click()
    widget.predict_btn.native.click()
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    assert isinstance(result.data, zarr.Array)  # never loaded into memory as a whole
    assert result.data.shape == image.shape and "shown from" in widget.status.value
    np.testing.assert_array_equal(result.scale, (2.0, 2.0))
    mem = predict_sync(blob_model, image, lazy=False)
    lazy = np.asarray(result.data)
    pairs = np.unique(np.stack([mem.ravel(), lazy.ravel()]), axis=1)
    assert len(pairs[0]) == len(np.unique(mem)) == len(np.unique(lazy))
    assert layer.data.shape == image.shape and np.array_equal(np.asarray(layer.data), image)  # untouched


def test_stop_cancels_a_big_prediction(viewer, widget, qtbot, tmp_path, blob_model, blob_field, monkeypatch):
    _lazy_layer(viewer, blob_field, tmp_path)
    choose_file(monkeypatch, "getOpenFileName", save_checkpoint(blob_model, tmp_path / "m.pt"))
    widget.files.load_btn.native.click()
    widget.predict_btn.native.click()
    t = time.perf_counter()
    widget.stop_btn.native.click()
    wait_idle(qtbot, widget, timeout=30_000)
    assert time.perf_counter() - t < 5
    assert widget.status.value == "Prediction cancelled."
    assert not ours(viewer)


def test_temporal_context_and_flat_3d_patches_reach_the_config(viewer, widget):
    viewer.add_image(np.zeros((5, 64, 64), np.float32), name="movie")
    widget.form.axes.value = "TYX"
    widget.form.temporal.value = 2
    assert widget.form.config().temporal_context == 2
    widget.form.axes.value = "ZYX"
    widget.form.temporal.value = 0
    widget.form.patch_z.value = 8
    widget.form.patch.value = 128
    assert widget.form.config().patch_size == (8, 128, 128)
