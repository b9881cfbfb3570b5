"""The data-set layer: lazy sources, per-image normalisation, validation split, sampling across images."""

import dask.array as da
import numpy as np
import pytest
import tifffile
import torch
import zarr

from napari_bioimg.core.data import sources
from napari_bioimg.core.data.dataset import DataSet, Split, make_sample
from napari_bioimg.core.data.normalize import Normalizer
from napari_bioimg.core.data.patches import IGNORE, pad_to_patch, split_validation
from napari_bioimg.core.data.sampling import PatchRef, Prefetch
from napari_bioimg.core.data.sources import Source, read_region
from napari_bioimg.core.data.targets import instance_classes, targets_for
from napari_bioimg.core.errors import InputError
from napari_bioimg.core.tasks.segmentation import instance_targets


def blobs(shape, n, seed, gain=1.0):
    """An image with ``n`` round objects, their instance labels, and scribble labels (1 = bg, 2 = object)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint16)
    for k in range(1, n + 1):
        cy, cx = rng.integers(8, shape[0] - 8), rng.integers(8, shape[1] - 8)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = k
    image = gain * ((labels > 0) * 200.0 + rng.normal(50, 20, shape))
    return image.astype(np.float32), labels


class CountingChunks:
    """A big lazy image (dask) that records which chunks are computed, never holding it whole."""

    def __init__(self, shape, chunk, dtype=np.uint16):
        self.reads: list[tuple[int, ...]] = []
        self.largest = 0

        def make(block_info=None):
            info = block_info[None]
            loc = info["chunk-location"]
            self.reads.append(tuple(loc))
            shp = info["chunk-shape"]
            self.largest = max(self.largest, int(np.prod(shp)))
            rng = np.random.default_rng(hash(tuple(loc)) % 2**32)
            return rng.integers(100, 1000, shp).astype(dtype)

        self.array = da.map_blocks(make, dtype=dtype, chunks=tuple(
            tuple(min(chunk, s - a) for a in range(0, s, chunk)) for s in shape))
        self.n_chunks = int(np.prod(self.array.numblocks))


# ---------------------------------------------------------------- sources


def test_source_reads_regions_in_canonical_order_from_zarr_tiff_npy(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 4000, (3, 40, 50)).astype(np.uint16)  # ZYX
    z = zarr.create_array(store=str(tmp_path / "a.zarr"), shape=img.shape, chunks=(1, 16, 16), dtype="uint16")
    z[:] = img
    tifffile.imwrite(tmp_path / "plain.tif", img, photometric="minisblack")  # contiguous: memory-mapped
    tifffile.imwrite(tmp_path / "tiled.tif", img, tile=(16, 16), compression="zlib", photometric="minisblack")  # through the zarr store
    np.save(tmp_path / "a.npy", img)
    from napari_bioimg.core.data.axes import make_layout

    for name in ("a.zarr", "plain.tif", "tiled.tif", "a.npy"):
        src = Source(tmp_path / name, "ZYX")
        lay = make_layout(src.shape, src.axes, spatial_dims=2)  # 3 planes of YX
        box = (slice(5, 21), slice(30, 50))
        np.testing.assert_array_equal(read_region(src, lay, 2, box)[0], img[2, 5:21, 30:50])
        assert src.lazy, name
    assert isinstance(Source(tmp_path / "plain.tif").array, np.memmap)


def test_files_are_closed_beyond_the_open_limit_and_reopened_on_read(tmp_path, monkeypatch):
    monkeypatch.setattr(sources._OPEN, "limit", 3)
    monkeypatch.setattr(sources._OPEN, "items", type(sources._OPEN.items)())
    images = []
    for i in range(8):
        img = np.full((32, 32), i, np.uint16)
        tifffile.imwrite(tmp_path / f"{i}.tif", img, tile=(16, 16), compression="zlib")
        images.append(img)
    srcs = [Source(tmp_path / f"{i}.tif") for i in range(8)]
    assert len(sources._OPEN.items) <= 3
    for _ in range(2):
        for i, s in enumerate(srcs):
            assert s[(slice(0, 4), slice(0, 4))].max() == i
            assert len(sources._OPEN.items) <= 3


def test_subsample_of_a_big_image_reads_a_few_chunks_only():
    big = CountingChunks((8192, 8192), 512)
    src = Source(big.array, "YX")
    from napari_bioimg.core.data.axes import make_layout

    values = sources.subsample(src, make_layout(src.shape, "YX"), max_values=200_000)
    assert len(set(big.reads)) <= sources.PERCENTILE_WINDOWS < big.n_chunks
    assert 100_000 < values[0].size <= 400_000 and values[0].min() >= 100


# ---------------------------------------------------------------- lazy sampling


def test_sampling_touches_only_the_chunks_under_the_sampled_patches():
    """A 20k x 20k image among small ones: normalisation reads a few windows, each batch a few chunks."""
    big = CountingChunks((20000, 20000), 1024)
    small = [blobs((96, 120), 5, s)[0] for s in range(3)]
    ds = DataSet([make_sample(big.array, axes="YX", name="big")] +
                 [make_sample(im, name=f"small{i}") for i, im in enumerate(small)])
    ds.fit_normalization()
    after_fit = len(big.reads)
    assert after_fit <= sources.PERCENTILE_WINDOWS
    sampler = ds.sampler((64, 64), targets_for("denoise"), np.random.default_rng(0), rescale=False)
    refs = []
    for _ in range(10):
        x, y = sampler.sample(4)
        assert x.shape == (4, 1, 64, 64) and torch.isfinite(x).all()
    drawn = len(big.reads) - after_fit
    assert 0 < drawn <= 10 * 4 * 4  # a 64-pixel patch lies on at most 4 chunks
    assert big.largest <= 1024 * 1024  # chunk by chunk, never the whole image
    # the big image holds most pixels, so most patches come from it (area-weighted draws)
    refs = [sampler.draw() for _ in range(200)]
    assert sum(r.sample == 0 for r in refs) > 190


@pytest.mark.parametrize("task", ["instance", "semantic", "instance-3d"])
def test_patches_equal_crops_of_the_whole_image_result(task):
    """Lazily made inputs and targets equal crops of the in-memory normalised image and targets (pads too)."""
    if task == "instance-3d":
        img, lbl = blobs((150, 40), 6, 1)
        img, lbl = np.stack([img, img[::-1]] * 3)[:5], np.stack([lbl, lbl[::-1]] * 3)[:5]  # ZYX, thinner than the patch
        ds, patch = DataSet([make_sample(img, lbl, axes="ZYX")]), (8, 48, 48)
    else:
        img, lbl = blobs((150, 40), 6, 1)  # narrower than the patch along X: padded as pad_to_patch pads
        if task == "semantic":
            lbl = np.where(lbl > 0, 2, 0).astype(np.uint16)  # objects painted as class 2, nothing else
        ds, patch = DataSet([make_sample(img, lbl)]), (64, 64)
    xn = Normalizer().apply(img[None, None], ranges=ds.ranges(0))
    whole = np.where(lbl[None] > 0, 1, IGNORE) if task == "semantic" else instance_targets(lbl[None])
    pi, pt = pad_to_patch(xn, whole, patch, True)
    sampler = ds.sampler(patch, targets_for(task.split("-")[0]), np.random.default_rng(2), augment=False)
    for _ in range(30):
        ref = sampler.draw()
        x, y = sampler.read(ref)
        box = tuple(slice(a, a + z) for a, z in zip(ref.start, ref.size))
        np.testing.assert_allclose(x, pi[(0, slice(None), *box)], rtol=1e-6)
        np.testing.assert_array_equal(y, pt[(0, *box)])


def test_instance_targets_use_one_rule():
    _, lbl = blobs((60, 60), 8, 3)
    np.testing.assert_array_equal(instance_targets(lbl[None])[0], instance_classes(lbl))


def test_focus_puts_annotations_in_most_patches():
    img, lbl = blobs((400, 400), 3, 4)
    scribbles = np.zeros_like(lbl)
    scribbles[lbl > 0] = 2
    scribbles[390:395, 10:20] = 1  # a little background stroke far from the objects
    ds = DataSet([make_sample(img, scribbles)])
    sampler = ds.sampler((48, 48), targets_for("semantic"), np.random.default_rng(0), focus=0.9, augment=False)
    hits = sum(bool((sampler.read(sampler.draw())[1] >= 0).any()) for _ in range(200))
    assert hits >= 170  # about 90% centred on annotations, plus the uniform ones that land on some


def test_batches_follow_the_engine_conventions():
    img, lbl = blobs((80, 90), 4, 5)
    ds = DataSet([make_sample(np.stack([img, img * 2], -1), lbl, axes="YXC")])
    x, y = ds.sampler((32, 32), targets_for("instance"), np.random.default_rng(0)).sample(5)
    assert x.dtype == torch.float32 and x.shape == (5, 2, 32, 32)
    assert y.dtype == torch.int64 and y.shape == (5, 32, 32) and set(torch.unique(y).tolist()) <= {-1, 0, 1, 2}
    noisy = make_sample(img, target=img * 0.5 + 3)
    x, y = DataSet([noisy]).sampler((32, 32), targets_for("restore"), np.random.default_rng(0)).sample(3)
    assert y.dtype == torch.float32 and y.shape == (3, 1, 32, 32)


def test_restore_target_keeps_nan_as_ignore_and_uses_the_image_percentiles():
    img, _ = blobs((64, 64), 3, 6)
    target = img.copy()
    target[:10] = np.nan
    ds = DataSet([make_sample(img, target=target)])
    t = ds.read_target(0, 0, (slice(0, 64), slice(0, 64)))
    assert np.isnan(t[0, :10]).all() and np.isfinite(t[0, 10:]).all()
    np.testing.assert_allclose(t[0, 10:], ds.read_image(0, 0, (slice(10, 64), slice(0, 64)))[0], rtol=1e-6)


# ---------------------------------------------------------------- normalisation


def test_each_image_is_normalised_with_its_own_percentiles_and_the_rule_is_kept():
    a, _ = blobs((100, 100), 5, 7)
    b, _ = blobs((60, 130), 5, 8, gain=10.0)
    ds = DataSet([make_sample(a, name="a"), make_sample(b, name="b")])
    rule = ds.fit_normalization((1.0, 99.8))
    assert rule.mode == "per_image" and (rule.p_low, rule.p_high) == (1.0, 99.8)
    for i, im in enumerate((a, b)):
        assert ds.ranges(i) == Normalizer().percentiles(im[None, None])  # exact on small images
        xn = ds.read_image(i, 0, (slice(0, im.shape[0]), slice(0, im.shape[1])))
        assert abs(np.percentile(xn, 1)) < 1e-4 and abs(np.percentile(xn, 99.8) - 1) < 1e-4
    # the stored rule makes prediction normalise each image by its own percentiles
    assert Normalizer.from_dict(rule.to_dict()).ranges(b[None, None]) == ds.ranges(1)
    fixed = ds.fit_normalization(mode="fixed")
    assert fixed.mode == "fixed" and ds.ranges(0) == ds.ranges(1) == (fixed.low, fixed.high)


def test_nan_pixels_become_zero_in_inputs_and_ignored_in_self_supervised_targets():
    img, _ = blobs((64, 64), 3, 9)
    img[5:9, 5:9] = np.nan
    ds = DataSet([make_sample(img)])
    sampler = ds.sampler((64, 64), targets_for("denoise"), np.random.default_rng(0), augment=False)
    x, y = sampler.read(PatchRef(0, 0, (0, 0), (64, 64)))
    assert (x[0, 5:9, 5:9] == 0).all() and np.isnan(y[0, 5:9, 5:9]).all() and np.isfinite(y[0, 20:]).all()


# ---------------------------------------------------------------- validation split


def annotated_set(n, marks=None):
    samples = []
    for i in range(n):
        img, lbl = blobs((50 + 10 * i, 70), 4, 10 + i)
        samples.append(make_sample(img, lbl, name=f"im{i}", **(marks or {}).get(i, {})))
    return DataSet(samples)


def test_whole_images_are_held_out_when_there_are_enough():
    ds = annotated_set(10)
    split = ds.split(0.2)
    assert split.mode == "images" and len(split.held) == 2
    assert all(h.plane is None for h in split.held)
    held = {h.sample for h in split.held}
    sampler = ds.sampler((32, 32), targets_for("instance"), np.random.default_rng(0), split=split)
    drawn = {sampler.draw().sample for _ in range(500)}
    assert not drawn & held and len(drawn) == 8
    assert "im" in split.describe(ds.names)


def test_marked_images_decide_the_split():
    ds = annotated_set(6, {1: {"split": "val"}, 4: {"split": "val"}})
    assert {h.sample for h in ds.split(0.5).held} == {1, 4}
    ds = annotated_set(6, {i: {"split": "train"} for i in range(5)})
    assert [h.sample for h in ds.split(0.5).held] == [5]  # only the unmarked one may be held out
    ds = annotated_set(2, {0: {"split": "val"}, 1: {"split": "val"}})
    with pytest.raises(InputError, match="mark at least one for training"):
        ds.split(0.2)


def test_few_images_fall_back_to_planes_then_regions_as_split_validation_does():
    img = np.stack([blobs((60, 60), 4, 20 + z)[0] for z in range(8)])
    lbl = np.stack([blobs((60, 60), 4, 20 + z)[1] for z in range(8)])
    ds = DataSet([make_sample(img, lbl, axes="ZYX")], spatial_dims=2)  # one stack: planes
    split = ds.split(0.25)
    expected = split_validation(lbl > 0, 0.25)
    assert split.mode == "planes" and [h.plane for h in split.held] == [r.sample for r in expected]
    ds = annotated_set(2)
    split = ds.split(0.2)
    assert split.mode == "regions"
    for h in split.held:
        lbl = ds.read_labels(h.sample, 0, (slice(0, 1000), slice(0, 1000)))
        assert h.box == split_validation((lbl > 0)[None], 0.2)[0].box
    sampler = ds.sampler((32, 32), targets_for("instance"), np.random.default_rng(0), split=split, augment=False)
    for _ in range(50):  # held-out pixels are never a training target
        ref = sampler.draw()
        _, y = sampler.read(ref)
        box = split.boxes(ref.sample, 0)[0]
        inside = [slice(max(0, b.start - a), max(0, b.stop - a)) for b, a in zip(box, ref.start)]
        assert (y[tuple(inside)] == IGNORE).all()


def test_self_supervised_split_counts_every_image():
    ds = DataSet([make_sample(blobs((80, 80), 2, i)[0], name=f"n{i}") for i in range(5)])
    assert ds.split(0.2).mode == "none"  # nothing annotated: no supervised validation
    split = ds.split(0.2, needs="image")
    assert split.mode == "images" and len(split.held) == 1
    one = DataSet([make_sample(blobs((128, 128), 2, 0)[0])])
    box = one.split(0.1, needs="image", max_region_pixels=1024).held[0].box
    assert np.prod([b.stop - b.start for b in box]) <= 1100


# ---------------------------------------------------------------- weights


def test_images_are_drawn_in_proportion_to_annotations_times_weight():
    lbls, imgs = [], []
    for i, n in enumerate((100, 300)):  # image 1 has three times the annotated pixels
        lbl = np.zeros((64, 64), np.uint16)
        lbl.flat[:n] = 1
        lbl.flat[-n:] = 2
        lbls.append(lbl)
        imgs.append(blobs((64, 64), 1, i)[0])
    ds = DataSet([make_sample(imgs[0], lbls[0]), make_sample(imgs[1], lbls[1])])

    def share(sampler, n=4000):
        return np.mean([sampler.draw().sample == 1 for _ in range(n)])

    rng = np.random.default_rng(0)
    assert abs(share(ds.sampler((32, 32), targets_for("semantic"), rng, focus=1.0)) - 0.75) < 0.03
    ds.samples[0].weight = 3.0  # now equal
    assert abs(share(ds.sampler((32, 32), targets_for("semantic"), rng, focus=1.0)) - 0.5) < 0.03
    ds.samples[0].weight = 0.0  # left out
    assert share(ds.sampler((32, 32), targets_for("semantic"), rng, focus=1.0)) == 1.0
    ds.samples[0].weight = 1.0
    assert abs(share(ds.sampler((32, 32), targets_for("semantic"), rng, focus=1.0, balance="images")) - 0.5) < 0.03


def test_unannotated_images_are_allowed_and_skipped_by_supervised_sampling():
    img, lbl = blobs((64, 64), 3, 0)
    ds = DataSet([make_sample(img, lbl, name="a"), make_sample(img * 2, name="plain")])
    sampler = ds.sampler((32, 32), targets_for("instance"), np.random.default_rng(0))
    assert {sampler.draw().sample for _ in range(100)} == {0} and "plain (no annotations)" in sampler.skipped[0]
    denoise = ds.sampler((32, 32), targets_for("denoise"), np.random.default_rng(0))
    assert {denoise.draw().sample for _ in range(100)} == {0, 1}
    with pytest.raises(InputError, match="no image is left to train on"):
        DataSet([make_sample(img, name="plain")]).sampler((32, 32), targets_for("semantic"), np.random.default_rng(0))


# ---------------------------------------------------------------- bad input


def test_data_sets_refuse_mixed_channels_ranks_and_shapes_with_names():
    a = np.zeros((32, 32, 3), np.float32)
    b = np.zeros((32, 32), np.float32)
    with pytest.raises(InputError, match=r"same number of channels; 1 channel\(s\): b; 3 channel\(s\): a"):
        DataSet([make_sample(a, axes="YXC", name="a"), make_sample(b, name="b")])
    with pytest.raises(InputError, match="mixed 2D and 3D images: s .ZYX. have a Z axis, b .YX. do not"):
        DataSet([make_sample(np.zeros((5, 32, 32)), axes="ZYX", name="s"), make_sample(b, name="b")])
    DataSet([make_sample(np.zeros((5, 32, 32)), axes="ZYX", name="s"), make_sample(b, name="b")], spatial_dims=2)
    with pytest.raises(InputError, match=r"annotation shape \(30, 32\) does not match the image b"):
        make_sample(b, np.zeros((30, 32), np.uint8), name="b")
    with pytest.raises(InputError, match="names must be unique"):
        DataSet([make_sample(b, name="x"), make_sample(b, name="x")])
    frac = np.zeros((32, 32), np.float32)
    frac[3, 3] = 0.5
    ds = DataSet([make_sample(b, frac, name="b")])
    with pytest.raises(InputError, match="b .labels.: annotations must be whole-number"):
        ds.split(0.1)
    with pytest.raises(InputError, match="split must be one of"):
        make_sample(b, split="test")


def test_single_is_the_one_image_case():
    img, lbl = blobs((64, 64), 3, 0)
    ds = DataSet.single(img, lbl)
    assert len(ds) == 1 and ds.layouts[0].axes == "YX" and ds.split(0.15).mode == "regions"
    stack = DataSet.single(np.zeros((4, 32, 32)), axes_hint="TYX")
    assert stack.layouts[0].axes == "TYX" and stack.n_planes(0) == 4 and stack.spatial_dims == 2


def test_split_none_without_validation():
    ds = annotated_set(5)
    assert ds.split(0.0).mode == "none"
    assert isinstance(ds.split(0.0), Split)


def test_reader_threads_and_prefetch_give_the_same_batches():
    img, lbl = blobs((90, 100), 5, 0)
    ds = DataSet([make_sample(img, lbl, name="a"), make_sample(img[::-1].copy(), lbl[::-1].copy(), name="b")])

    def batches(workers, prefetch=False):
        sampler = ds.sampler((32, 32), targets_for("instance"), np.random.default_rng(7), workers=workers)
        source = Prefetch(sampler, 4) if prefetch else sampler
        out = [source.sample(4) for _ in range(3)]
        source.close()
        return out

    ref = batches(0)
    for other in (batches(4), batches(2, prefetch=True)):
        for (x0, y0), (x1, y1) in zip(ref, other):
            assert torch.equal(x0, x1) and torch.equal(y0, y1)
