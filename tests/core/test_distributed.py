"""Scale-out on dask.distributed: a folder of images and the blocks of one image, on a LocalCluster."""

import numpy as np
import pytest
import tifffile

from napari_bioimg.core import PredictConfig, PredictSource, predict, predict_sync
from napari_bioimg.core import events as E
from napari_bioimg.core.control import drain
from napari_bioimg.core.formats.checkpoint import save_checkpoint

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def test_folder_on_a_local_cluster(client, blob_model, blob_field, tmp_path):
    from napari_bioimg.core.inference.folder import predict_folder

    image, _ = blob_field
    model = save_checkpoint(blob_model, tmp_path / "model.pt")  # workers load the model by path
    folder = tmp_path / "images"
    folder.mkdir()
    frames = {"a.tif": image[:96, :96], "b.tif": image[::-1, :128]}
    for name, im in frames.items():
        tifffile.imwrite(folder / name, im)
    (folder / "broken.tif").write_bytes(b"not a tiff")
    events = []
    results = drain(predict_folder(model, folder, tmp_path / "out", client, PredictConfig(tile=64)), events.append)
    assert [r["image"].rsplit("/", 1)[-1] for r in results] == ["a.tif", "b.tif", "broken.tif"]
    assert "error" in results[2] and any(isinstance(e, E.Notice) and "broken.tif" in e.message for e in events)
    for name, im in frames.items():
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / name), predict_sync(blob_model, im, tile=64))
    assert [e.done for e in events if isinstance(e, E.PredictProgress)] == [1, 2, 3]


def test_blocks_of_one_image_on_a_local_cluster(client, blob_model, blob_field, tmp_path, monkeypatch):
    from napari_bioimg.core.inference import distributed as dist

    monkeypatch.setattr(dist, "BLOCKS_PER_TASK", 3)
    image, _ = blob_field
    config = PredictConfig(tile=64, block=64)
    model = save_checkpoint(blob_model, tmp_path / "model.pt")
    tifffile.imwrite(tmp_path / "img.tif", image, tile=(64, 64))
    out = drain(predict(model, PredictSource(tmp_path / "img.tif"), config, out=tmp_path / "pred.zarr", client=client))
    local = drain(predict(blob_model, image, config, out=tmp_path / "local.zarr"))
    np.testing.assert_array_equal(out[...], local[...])  # same blocks, same ids, wherever they ran
