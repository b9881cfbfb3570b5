"""Pairing files into data sets (the engine side of --image/--labels/--data): every bad input named clearly."""

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_bioimg.core.data.collect import collect, image_stem, read_pairs_table
from napari_bioimg.core.data.targets import targets_for
from napari_bioimg.core.errors import InputError


def img(path: Path, shape=(32, 40), value=None, dtype=np.uint16, seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 1000, shape).astype(dtype) if value is None else np.full(shape, value, dtype)
    if path.suffix == ".npy":
        np.save(path, data)
    else:
        tifffile.imwrite(path, data, photometric="minisblack")
    return path


def mask(path: Path, shape=(32, 40)) -> Path:
    lbl = np.zeros(shape, np.uint16)
    lbl[4:12, 4:12] = 1
    lbl[20:28, 20:30] = 2
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, lbl, photometric="minisblack")
    return path


def names(collection):
    return [(e.image.name, e.labels.name if e.labels else None) for e in collection.entries]


# ---------------------------------------------------------------- the four ways


def test_folders_pair_by_stem_with_common_mask_suffixes(tmp_path):
    for n in ("a", "b", "c", "d", "e.ome"):
        img(tmp_path / "imgs" / f"{n}.tif")
    mask(tmp_path / "masks" / "a.tif")
    mask(tmp_path / "masks" / "b_mask.tif")
    mask(tmp_path / "masks" / "c_labels.tif")
    mask(tmp_path / "masks" / "d-lbl.tif")
    mask(tmp_path / "masks" / "e_seg.ome.tif")
    (tmp_path / "masks" / ".DS_Store").write_text("x")
    c = collect([tmp_path / "imgs"], [tmp_path / "masks"])
    assert names(c) == [("a.tif", "a.tif"), ("b.tif", "b_mask.tif"), ("c.tif", "c_labels.tif"),
                        ("d.tif", "d-lbl.tif"), ("e.ome.tif", "e_seg.ome.tif")]
    assert image_stem("x/e.ome.tif") == "e" and image_stem("x/f.ome.zarr/") == "f"
    ds = c.open()
    assert len(ds) == 5 and ds.annotated_pixels(1) == 64 + 80


def test_images_and_masks_in_one_folder(tmp_path):
    for n in ("a", "b"):
        img(tmp_path / f"{n}.tif")
        mask(tmp_path / f"{n}_mask.tif")
    c = collect([tmp_path], [tmp_path])
    assert names(c) == [("a.tif", "a_mask.tif"), ("b.tif", "b_mask.tif")]


def test_repeated_files_pair_in_order(tmp_path):
    a, b = img(tmp_path / "a.tif"), img(tmp_path / "b.tif")
    la, lb = mask(tmp_path / "a_lbl.tif"), mask(tmp_path / "b_lbl.tif")
    assert names(collect([a, b], [la, lb])) == [("a.tif", "a_lbl.tif"), ("b.tif", "b_lbl.tif")]
    x = mask(tmp_path / "ground_truth_1.tif")  # names that say nothing are trusted in order
    assert names(collect([a], [x])) == [("a.tif", "ground_truth_1.tif")]
    with pytest.raises(InputError, match=r"b_lbl.tif \(given with a.tif\).*name another image; give them in the "
                                         "same order"):
        collect([a, b], [lb, la])
    with pytest.raises(InputError, match=r"2 image\(s\) but 1 annotation file\(s\) in --labels"):
        collect([a, b], [la])


def test_images_alone_give_an_unannotated_set(tmp_path):
    for n in range(3):
        img(tmp_path / "noisy" / f"{n}.tif", seed=n)
    (tmp_path / "noisy" / "notes.txt").write_text("hello")
    c = collect([tmp_path / "noisy"])
    assert [e.labels for e in c.entries] == [None] * 3
    assert "ignored 1 non-image file(s)" in c.notices[0] and "notes.txt" in c.notices[0]
    ds = c.open()
    x, _ = ds.sampler((16, 16), targets_for("denoise"), np.random.default_rng(0)).sample(2)
    assert x.shape == (2, 1, 16, 16)


def test_pairs_table_with_relative_paths_split_and_weight(tmp_path):
    img(tmp_path / "data" / "imgs" / "a.tif")
    img(tmp_path / "data" / "imgs" / "b.tif")
    img(tmp_path / "data" / "imgs" / "c.tif")
    mask(tmp_path / "data" / "masks" / "a.tif")
    mask(tmp_path / "data" / "masks" / "b.tif")
    table = tmp_path / "data" / "pairs.csv"
    table.write_text("image,labels,split,weight,comment\n"
                     "imgs/a.tif,masks/a.tif,train,,first\n"
                     "imgs/b.tif,masks/b.tif,val,2,\n"
                     f"{tmp_path / 'data' / 'imgs' / 'c.tif'},,,0.5,unannotated\n")
    c = collect(data=table)
    assert names(c) == [("a.tif", "a.tif"), ("b.tif", "b.tif"), ("c.tif", None)]
    assert [e.split for e in c.entries] == ["train", "val", "auto"] and [e.weight for e in c.entries] == [1, 2, 0.5]
    assert "comment" in c.notices[0]
    ds = c.open()
    assert [h.sample for h in ds.split(0.2).held] == [1]


# ---------------------------------------------------------------- bad input


def test_unpaired_files_are_listed(tmp_path):
    for n in ("a", "b", "c"):
        img(tmp_path / "imgs" / f"{n}.tif")
    mask(tmp_path / "masks" / "a.tif")
    mask(tmp_path / "masks" / "zz_mask.tif")
    with pytest.raises(InputError, match=r"1 annotation file\(s\) match no image: zz_mask.tif"):
        collect([tmp_path / "imgs"], [tmp_path / "masks"])
    (tmp_path / "masks" / "zz_mask.tif").unlink()
    with pytest.raises(InputError, match=r"2 image\(s\) have no annotation: b.tif, c.tif"):
        collect([tmp_path / "imgs"], [tmp_path / "masks"])
    c = collect([tmp_path / "imgs"], [tmp_path / "masks"], unlabelled="keep")
    assert names(c) == [("a.tif", "a.tif"), ("b.tif", None), ("c.tif", None)]
    assert "kept unannotated: b.tif, c.tif" in c.notices[0]


def test_empty_and_missing_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images .* in .*empty .it is empty"):
        collect([tmp_path / "empty"])
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.md").write_text("x")
    with pytest.raises(InputError, match="it holds readme.md"):
        collect([tmp_path / "docs"])
    with pytest.raises(InputError, match="--image: not found: .*nope.tif"):
        collect([tmp_path / "nope.tif"])
    with pytest.raises(InputError, match="no images given"):
        collect([])
    with pytest.raises(InputError, match="not an image"):
        collect([tmp_path / "docs" / "readme.md"])


def test_table_with_missing_files_bad_values_and_no_image_column(tmp_path):
    img(tmp_path / "a.tif")
    bad = tmp_path / "pairs.csv"
    bad.write_text("image,labels\na.tif,missing_mask.tif\ngone.tif,\n")
    with pytest.raises(InputError, match=r"pairs.csv: 2 file\(s\) not found: .*missing_mask.tif \(labels, row 2\), "
                                         r".*gone.tif \(image, row 3\)"):
        read_pairs_table(bad)
    bad.write_text("image,split,weight\na.tif,test,-1\n")
    with pytest.raises(InputError, match=r"row 2: split 'test' .*row 2: weight '-1'"):
        read_pairs_table(bad)
    bad.write_text("file_name,mask\na.tif,b.tif\n")
    with pytest.raises(InputError, match="needs a header row with an 'image' column"):
        read_pairs_table(bad)
    with pytest.raises(InputError, match="either a data table or images"):
        collect([tmp_path / "a.tif"], data=bad)


def test_duplicate_names(tmp_path):
    img(tmp_path / "imgs" / "a.tif")
    img(tmp_path / "imgs" / "a.npy")
    with pytest.raises(InputError, match="several files have the same name .*a.npy and a.tif"):
        collect([tmp_path / "imgs"])
    (tmp_path / "imgs" / "a.npy").unlink()
    mask(tmp_path / "masks" / "a.tif")
    mask(tmp_path / "masks" / "a_mask.tif")
    with pytest.raises(InputError, match="several annotation files match one image: a.tif and a_mask.tif for a.tif"):
        collect([tmp_path / "imgs"], [tmp_path / "masks"])
    with pytest.raises(InputError, match="the same image is given twice: a.tif"):
        collect([tmp_path / "imgs" / "a.tif", tmp_path / "imgs" / "a.tif"])
    # one name in two folders is fine: each folder pairs with its own annotations, names say where
    img(tmp_path / "day2" / "a.tif")
    mask(tmp_path / "masks2" / "a.tif")
    (tmp_path / "masks" / "a_mask.tif").unlink()
    c = collect([tmp_path / "imgs", tmp_path / "day2"], [tmp_path / "masks", tmp_path / "masks2"])
    assert [e.name for e in c.entries] == ["imgs/a.tif", "day2/a.tif"]
    assert [e.labels.parent.name for e in c.entries] == ["masks", "masks2"]


def test_unreadable_files_are_all_named_at_once(tmp_path):
    good = img(tmp_path / "imgs" / "good.tif")
    (tmp_path / "imgs" / "broken.tif").write_bytes(b"not a tiff at all")
    (tmp_path / "imgs" / "empty.npy").write_bytes(b"")
    c = collect([tmp_path / "imgs"])
    with pytest.raises(InputError, match=r"2 of 3 image\(s\) cannot be used: .*broken.tif.*; .*empty.npy"):
        c.open()
    assert good.exists() and (tmp_path / "imgs" / "broken.tif").read_bytes() == b"not a tiff at all"


def test_shape_channel_and_rank_mismatches_name_the_files(tmp_path):
    a = img(tmp_path / "a.tif")
    la = mask(tmp_path / "a_mask.tif", shape=(30, 40))
    with pytest.raises(InputError, match=r"a_mask.tif: annotation shape \(30, 40\) does not match the image a.tif"):
        collect([a], [la]).open()
    rgb = img(tmp_path / "rgb.npy", shape=(32, 40, 3))
    with pytest.raises(InputError, match=r"1 channel\(s\): a.tif; 3 channel\(s\): rgb.npy"):
        collect([a, rgb]).open()
    stack = img(tmp_path / "stack.tif", shape=(6, 32, 40))
    with pytest.raises(InputError, match=r"mixed 2D and 3D images: stack.tif \(ZYX\) have a Z axis, a.tif \(YX\)"):
        collect([a, stack]).open()
    assert len(collect([a, stack]).open(spatial_dims=2)) == 2


def test_a_huge_image_among_small_ones_is_opened_and_sampled_lazily(tmp_path):
    """A 16k x 16k zarr (512 MB as uint16) next to small TIFFs: opening, normalising and sampling stay small."""
    big = zarr.create_array(store=str(tmp_path / "imgs" / "huge.zarr"), shape=(16384, 16384), chunks=(1024, 1024),
                            dtype="uint16", fill_value=7)
    big[:1024, :2048] = np.random.default_rng(0).integers(0, 5000, (1024, 2048)).astype(np.uint16)
    for n in range(3):
        img(tmp_path / "imgs" / f"small{n}.tif", seed=n)
    tracemalloc.start()
    try:
        ds = collect([tmp_path / "imgs"]).open()
        assert ds.names[0] == "huge.zarr" and ds.layouts[0].spatial_shape == (16384, 16384)
        ds.fit_normalization()
        sampler = ds.sampler((64, 64), targets_for("denoise"), np.random.default_rng(0))
        for _ in range(5):
            sampler.sample(4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak / 2**20  # the whole image would be 512 MB


# ---------------------------------------------------------------- targets and classes


def test_targets_pair_like_annotations(tmp_path):
    img(tmp_path / "noisy" / "a.tif")
    img(tmp_path / "clean" / "a_clean.tif", seed=3)
    c = collect([tmp_path / "noisy"], targets=[tmp_path / "clean"])
    assert c.entries[0].target.name == "a_clean.tif"
    ds = c.open()
    _, y = ds.sampler((16, 16), targets_for("restore"), np.random.default_rng(0)).sample(2)
    assert y.shape == (2, 1, 16, 16)
    img(tmp_path / "noisy" / "b.tif")
    with pytest.raises(InputError, match=r"1 image\(s\) have no target: b.tif"):
        collect([tmp_path / "noisy"], targets=[tmp_path / "clean"])


def test_classification_triples_with_a_table_per_image_or_one_table(tmp_path):
    for n in ("a", "b"):
        img(tmp_path / "imgs" / f"{n}.tif")
        mask(tmp_path / "objects" / f"{n}.tif")
    (tmp_path / "classes").mkdir()
    (tmp_path / "classes" / "a_classes.csv").write_text("label_id,class\n1,round\n2,long\n")
    (tmp_path / "classes" / "b.csv").write_text("label_id,class\n1,long\n")
    c = collect([tmp_path / "imgs"], [tmp_path / "objects"], classes=[tmp_path / "classes"])
    ds = c.open()
    assert ds[0].classes.classes == {1: "round", 2: "long"} and ds[1].classes.classes == {1: "long"}
    shared = tmp_path / "all_classes.csv"
    shared.write_text("image,label_id,class\na.tif,1,round\nb,2,round\na.tif,2,long\n")
    ds = collect([tmp_path / "imgs"], [tmp_path / "objects"], classes=[shared]).open()
    assert ds[0].classes.classes == {1: "round", 2: "long"} and ds[1].classes.classes == {2: "round"}
    shared.write_text("image,label_id,class\nc.tif,1,round\n")
    with pytest.raises(InputError, match=r"all_classes.csv: rows name images that are not given: c.tif \(row 2\)"):
        collect([tmp_path / "imgs"], [tmp_path / "objects"], classes=[shared])
    with pytest.raises(InputError, match=r"2 image\(s\) but 1 class table file\(s\)"):
        collect([tmp_path / "imgs"], [tmp_path / "objects"], classes=[tmp_path / "classes" / "b.csv"])
