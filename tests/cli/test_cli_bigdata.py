"""CLI: zarr / OME-Zarr in and out block by block, folders on a local dask cluster, clear errors."""

import importlib

import numpy as np
import tifffile
import zarr

from napari_bioimg.cli import main
from napari_bioimg.core import predict_sync
from napari_bioimg.core.data.zarrio import create_output
from napari_bioimg.core.formats.checkpoint import save_checkpoint


def test_predict_zarr_to_ome_zarr(blob_model, blob_field, tmp_path, capsys):
    image, _ = blob_field
    model = save_checkpoint(blob_model, tmp_path / "m.pt")
    src = zarr.create_array(store=str(tmp_path / "big.zarr"), shape=image.shape, chunks=(64, 64), dtype="float32")
    src[...] = image
    assert main(["predict", "--model", str(model), "--image", str(tmp_path / "big.zarr"), "--out",
                 str(tmp_path / "pred.ome.zarr"), "--tile", "64", "--block", "64", "--quiet"]) == 0
    group = zarr.open_group(str(tmp_path / "pred.ome.zarr"), mode="r")
    pred = group["0"][...]
    mem = predict_sync(blob_model, image, tile=64)
    pairs = np.unique(np.stack([mem.ravel(), pred.ravel()]), axis=1)
    assert len(pairs[0]) == len(np.unique(mem)) == len(np.unique(pred))
    assert "wrote" in capsys.readouterr().err


def test_predict_folder_on_local_cluster(blob_model, blob_field, tmp_path, capsys):
    image, _ = blob_field
    model = save_checkpoint(blob_model, tmp_path / "m.pt")
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "one.tif", image[:96, :96])
    np.save(tmp_path / "in" / "two.npy", image[:80, :64])
    assert main(["predict", "--model", str(model), "--image", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--tile", "64", "--workers", "1", "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["one.tif", "two.tif"]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "two.tif"),
                                  predict_sync(blob_model, image[:80, :64], tile=64))


def test_too_big_for_memory_says_use_zarr(blob_model, blob_field, tmp_path, capsys, monkeypatch):
    image, _ = blob_field
    model = save_checkpoint(blob_model, tmp_path / "m.pt")
    create_output(tmp_path / "in.zarr", image.shape, (64, 64), np.float32, "YX")[...] = image
    monkeypatch.setattr(importlib.import_module("napari_bioimg.core.inference.predict"), "LAZY_BYTES", 1000)
    assert main(["predict", "--model", str(model), "--image", str(tmp_path / "in.zarr"), "--out",
                 str(tmp_path / "p.tif"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out must be a zarr folder (e.g. result.zarr)" in err
    assert not (tmp_path / "p.tif").exists()
    assert main(["predict", "--model", str(model), "--image", str(tmp_path / "in.zarr"), "--out",
                 str(tmp_path / "p.tif"), "--scheduler", "tcp://127.0.0.1:1", "--quiet"]) == 2
    assert "zarr" in capsys.readouterr().err
