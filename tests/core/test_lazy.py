"""Block-by-block prediction into zarr equals the in-memory prediction, with bounded work per block."""

import importlib

import numpy as np
import pytest
import tifffile
import torch
import zarr

from napari_bioimg.core import Control, PredictConfig, get_model, predict_sync
from napari_bioimg.core import events as E
from napari_bioimg.core.control import drain
from napari_bioimg.core.data.zarrio import create_output, open_image, opened_image
from napari_bioimg.core.inference.predict import predict
from napari_bioimg.core.inference.tiling import TileCache, TileGrid, blend_tiles, tiled_apply


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Two label images describe the same objects (ids may differ)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(pairs[0]) == len(np.unique(a)) == len(np.unique(b)) and ((pairs[0] == 0) == (pairs[1] == 0)).all()


def test_blocks_of_the_tile_grid_give_exactly_the_whole_image_result():
    torch.manual_seed(0)
    model = get_model("unet", spatial_dims=2, in_channels=1, out_channels=2, depth=2, base_channels=4).eval()

    def fn(x):
        return torch.softmax(model(x), 1)

    img = np.random.default_rng(0).normal(size=(1, 150, 130)).astype(np.float32)
    whole = drain(tiled_apply(fn, img, 2, tile=48, overlap=0.25, divisor=4))
    grid = TileGrid((150, 130), 48, 0.25, 4)
    cache = TileCache()
    stitched = np.zeros_like(whole)
    for y0 in range(0, 150, 64):
        for x0 in range(0, 130, 64):
            core = (slice(y0, min(y0 + 64, 150)), slice(x0, min(x0 + 64, 130)))
            pos = grid.positions(core)
            region = grid.region(pos)
            part = drain(blend_tiles(fn, img[(slice(None), *region)], (region[0].start, region[1].start), grid, pos,
                                     2, batch_size=3, cache=cache))
            inner = tuple(slice(c.start - r.start, c.stop - r.start) for c, r in zip(core, region))
            stitched[(slice(None), *core)] = part[(slice(None), *inner)]
    np.testing.assert_allclose(stitched, whole, atol=1e-5)
    assert cache.hits > 0  # tiles reaching into later blocks were not run twice


def test_tile_cache_holds_only_tiles_a_later_block_needs():
    """Each tile runs once; a cached tile is dropped when its last block is done (memory independent of size)."""
    from types import SimpleNamespace

    from napari_bioimg.core.inference.blocks import Block, TileUse

    grid = TileGrid((300, 260), 48, 0.25, 4)
    blocks = [Block((), (slice(y, min(y + 64, 300)), slice(x, min(x + 64, 260))))
              for y in range(0, 300, 64) for x in range(0, 260, 64)]
    plan = SimpleNamespace(positions=lambda b: grid.positions(b.core))
    use, runs, peak = TileUse(plan, blocks), [], 0
    cache = use.cache
    img = np.random.default_rng(1).normal(size=(1, 300, 260)).astype(np.float32)

    def fn(x):
        runs.append(len(x))
        return x.repeat(1, 2, 1, 1)

    for i, b in enumerate(blocks):
        pos = plan.positions(b)
        region = grid.region(pos)
        drain(blend_tiles(fn, img[(slice(None), *region)], tuple(r.start for r in region), grid, pos, 2,
                          batch_size=4, cache=cache, keep=use.keep(i, b)))
        peak = max(peak, len(cache.items))
        use.release(i, b)
    assert sum(runs) == len(grid.positions())  # every tile of the image ran exactly once
    assert not cache.items and cache.nbytes == 0  # nothing left over at the end
    row_of_tiles = len(grid.positions((slice(0, 1), slice(0, 260))))
    assert peak <= 2 * row_of_tiles + 4, (peak, row_of_tiles)  # about one row of border tiles, not the image

    # a cache too small for a row: it stays within its cap and the tiles it could not keep simply run again
    use, runs[:] = TileUse(plan, blocks, max_bytes=3 * 2 * 48 * 48 * 4), []
    small = use.cache
    stitched = np.zeros((2, 300, 260), np.float32)
    for i, b in enumerate(blocks):
        pos = plan.positions(b)
        region = grid.region(pos)
        part = drain(blend_tiles(fn, img[(slice(None), *region)], tuple(r.start for r in region), grid, pos, 2,
                                 batch_size=4, cache=small, keep=use.keep(i, b)))
        assert len(small.items) <= 3
        inner = tuple(slice(c.start - r.start, c.stop - r.start) for c, r in zip(b.core, region))
        stitched[(slice(None), *b.core)] = part[(slice(None), *inner)]
        use.release(i, b)
    whole = drain(tiled_apply(fn, img, 2, tile=48, overlap=0.25, divisor=4))
    np.testing.assert_allclose(stitched, whole, atol=1e-5)
    assert small.refused > 0 and sum(runs) > len(grid.positions())


def test_lazy_instances_equal_in_memory_across_block_borders(blob_model, blob_field, tmp_path):
    image, _ = blob_field
    mem = predict_sync(blob_model, image, tile=64)
    events = []
    out = drain(predict(blob_model, image, PredictConfig(tile=64, block=64), out=tmp_path / "pred.zarr"), events.append)
    lazy = out[...]
    assert isinstance(out, zarr.Array) and out.chunks == (64, 64) and lazy.shape == image.shape
    assert not [e for e in events if isinstance(e, E.Notice)]  # no object larger than the margin
    assert same_partition(mem, lazy)
    assert set(np.unique(lazy)) == set(range(int(lazy.max()) + 1))  # ids renumbered 1..n
    crossing = [i for i in np.unique(lazy[:, 60:68]) if i and (lazy[:, 60:64] == i).any() and (lazy[:, 64:68] == i).any()]
    assert crossing  # objects do straddle block borders and keep one id


def test_zarr_round_trip_ome_and_stop(blob_model, blob_field, tmp_path):
    image, _ = blob_field
    camera = np.clip(image, 0, None).astype(np.uint16)
    stack = np.stack([camera, camera[::-1]])  # TYX, uint16 like a camera
    src = create_output(tmp_path / "in.ome.zarr", stack.shape, (1, 64, 64), np.uint16, "TYX", [1.0, 0.5, 0.5])
    src[...] = stack
    lazy_src, hint, meta = open_image(tmp_path / "in.ome.zarr")
    assert hint == "TYX" and meta["scale"] == [1.0, 0.5, 0.5] and isinstance(lazy_src, zarr.Array)
    out = drain(predict(blob_model, str(tmp_path / "in.ome.zarr"), PredictConfig(tile=64, block=128),
                        out=tmp_path / "out.ome.zarr"))
    mem = predict_sync(blob_model, stack, "TYX", tile=64)
    assert out.shape == stack.shape and same_partition(mem, out[...])
    ms = zarr.open_group(str(tmp_path / "out.ome.zarr"), mode="r").attrs["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["t", "y", "x"]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 0.5, 0.5]

    before = sorted(p.name for p in tmp_path.iterdir())
    control = Control()
    gen = predict(blob_model, str(tmp_path / "in.ome.zarr"), PredictConfig(tile=32, block=64),
                  out=tmp_path / "out.ome.zarr", control=control)
    for ev in gen:
        if isinstance(ev, E.PredictProgress):
            control.stop()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no partial store left behind
    assert zarr.open_group(str(tmp_path / "out.ome.zarr"), mode="r")["0"].shape == stack.shape  # old result kept


def test_tiff_and_dask_inputs_are_read_lazily(blob_model, blob_field, tmp_path):
    da = pytest.importorskip("dask.array")
    image, _ = blob_field
    tifffile.imwrite(tmp_path / "big.tif", image, tile=(64, 64))
    with opened_image(tmp_path / "big.tif") as (arr, hint, _):
        assert isinstance(arr, zarr.Array) and hint == "YX"
    mem = predict_sync(blob_model, image, tile=64)
    from_tif = drain(predict(blob_model, str(tmp_path / "big.tif"), PredictConfig(tile=64, block=128)))
    from_dask = drain(predict(blob_model, da.from_array(image, chunks=64), PredictConfig(tile=64, block=64), lazy=True))
    assert same_partition(mem, from_tif[...]) and same_partition(mem, from_dask[...])


def test_size_picks_the_path(blob_model, blob_field, monkeypatch):
    image, _ = blob_field
    small = drain(predict(blob_model, image, PredictConfig(tile=64)))
    assert isinstance(small, np.ndarray)
    predict_mod = importlib.import_module("napari_bioimg.core.inference.predict")  # the module, not the function
    monkeypatch.setattr(predict_mod, "LAZY_BYTES", 1000)
    big = drain(predict(blob_model, image, PredictConfig(tile=64)))
    assert isinstance(big, zarr.Array) and same_partition(small, big[...])
    assert image.dtype == np.float32 and image.flags.writeable  # the user's array is untouched
