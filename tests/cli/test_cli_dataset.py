"""The command line on many images: folders paired by name, files in order, tables; every bad input named."""

import json
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import tifffile
import zarr

from napari_bioimg.cli import main
from napari_bioimg.core.formats.checkpoint import load_checkpoint

from .scenes import blobs

SHORT = ["--epochs", "1", "--steps-per-epoch", "3", "--patch-size", "32", "--depth", "2", "--base-channels", "8",
         "--batch-size", "2", "--quiet"]


def run(*args):
    return subprocess.run([sys.executable, "-m", "napari_bioimg.cli", *args], capture_output=True, text=True)


@pytest.fixture
def folders(tmp_path):
    """imgs/{a,b,c}.tif of different sizes, masks/{a,b,c}_mask.tif."""
    (tmp_path / "imgs").mkdir()
    (tmp_path / "masks").mkdir()
    for i, (name, shape) in enumerate([("a", (64, 70)), ("b", (80, 64)), ("c", (72, 96))]):
        img, lbl = blobs(shape, i)
        tifffile.imwrite(tmp_path / "imgs" / f"{name}.tif", img)
        tifffile.imwrite(tmp_path / "masks" / f"{name}_mask.tif", lbl)
    return tmp_path


def train_args(d, *args):
    return ["train", *args, "--out", str(d / "m.pt"), *SHORT]


def test_folders_pair_by_name_and_predict_writes_every_image(folders, capsys):
    d = folders
    assert main(train_args(d, "--task", "instance", "--image", str(d / "imgs"), "--labels", str(d / "masks"))) == 0
    summary = json.loads(next(line for line in capsys.readouterr().err.splitlines() if line.startswith("{")))
    assert summary["images"] == 3 and summary["steps"] == 3
    assert load_checkpoint(d / "m.pt")["training"]["data"].startswith("3 image(s) (3 annotated)")
    assert main(["predict", "--model", str(d / "m.pt"), "--image", str(d / "imgs"), "--out", str(d / "out"),
                 "--workers", "1", "--quiet"]) == 0
    assert sorted(p.name for p in (d / "out").iterdir()) == ["a.tif", "b.tif", "c.tif"]
    assert tifffile.imread(d / "out" / "b.tif").shape == (80, 64)


def test_files_in_order_and_self_supervised_folders(folders):
    d = folders
    assert main(train_args(d, "--task", "instance", "--image", str(d / "imgs" / "a.tif"), "--image",
                           str(d / "imgs" / "b.tif"), "--labels", str(d / "masks" / "a_mask.tif"), "--labels",
                           str(d / "masks" / "b_mask.tif"))) == 0
    assert main(train_args(d, "--task", "denoise", "--image", str(d / "imgs"))) == 0


def test_a_table_with_splits(folders):
    d = folders
    rows = ["image,labels,split", "imgs/a.tif,masks/a_mask.tif,train", "imgs/b.tif,masks/b_mask.tif,val",
            "imgs/c.tif,masks/c_mask.tif,"]
    (d / "pairs.csv").write_text("\n".join(rows) + "\n")
    scribbles = d / "masks"
    for name in "abc":  # scribbles: 1 background, 2 objects
        lbl = tifffile.imread(scribbles / f"{name}_mask.tif")
        tifffile.imwrite(scribbles / f"{name}_mask.tif", np.where(lbl > 0, 2, 1).astype(np.uint8))
    res = run(*train_args(d, "--task", "semantic", "--data", str(d / "pairs.csv")))
    assert res.returncode == 0, res.stderr
    assert "validation on 1 whole image(s): b.tif" in res.stderr


def test_few_labels_with_pretraining_keeps_unlabelled_images(folders):
    d = folders
    (d / "masks" / "c_mask.tif").unlink()
    res = run(*train_args(d, "--task", "instance", "--image", str(d / "imgs"), "--labels", str(d / "masks")))
    assert res.returncode == 2 and "1 image(s) have no annotation: c.tif" in res.stderr and "--allow-unlabelled" in \
        res.stderr
    res = run(*train_args(d, "--task", "instance", "--image", str(d / "imgs"), "--labels", str(d / "masks"),
                          "--pretrain-steps", "2"))
    assert res.returncode == 0, res.stderr
    assert "pretraining on 3 image(s)" in res.stderr and "c.tif (no annotations)" in res.stderr
    assert load_checkpoint(d / "m.pt")["training"]["pretrain"]["steps"] == 2


def bad(d, what):
    """Make one kind of bad input in a copy of the folders; return the train arguments."""
    imgs, masks = d / "imgs", d / "masks"
    if what == "unpaired":
        tifffile.imwrite(masks / "zz_mask.tif", np.zeros((8, 8), np.uint8))
    elif what == "unreadable":
        (imgs / "b.tif").write_bytes(b"not a tiff at all")
    elif what == "channels":
        tifffile.imwrite(imgs / "b.tif", np.zeros((80, 64, 3), np.uint16), photometric="rgb")
    elif what == "2d3d":
        tifffile.imwrite(imgs / "b.tif", np.zeros((5, 80, 64), np.uint16), metadata={"axes": "ZYX"})
        tifffile.imwrite(masks / "b_mask.tif", np.zeros((5, 80, 64), np.uint16), metadata={"axes": "ZYX"})
    elif what == "empty":
        (d / "none").mkdir()
        return ["--image", str(d / "none")]
    elif what == "csv":
        (d / "pairs.csv").write_text("image,labels\nimgs/a.tif,masks/a_mask.tif\nimgs/nope.tif,masks/x.tif\n")
        return ["--data", str(d / "pairs.csv")]
    elif what == "duplicate":
        np.save(imgs / "a.npy", np.zeros((8, 8), np.uint16))
    return ["--image", str(imgs), "--labels", str(masks)]


@pytest.mark.parametrize("what, message", [
    ("unpaired", "1 annotation file(s) match no image: zz_mask.tif"),
    ("unreadable", "b.tif"),
    ("channels", "the images must have the same number of channels; 1 channel(s): a.tif, c.tif; 3 channel(s): b.tif"),
    ("2d3d", "mixed 2D and 3D images: b.tif (ZYX) have a Z axis"),
    ("empty", "it is empty"),
    ("csv", "pairs.csv: 2 file(s) not found"),
    ("duplicate", "several files have the same name (which one is meant?): a.npy and a.tif"),
])
def test_bad_sets_are_one_clear_line_and_nothing_is_written(folders, what, message):
    d = folders
    res = run(*train_args(d, "--task", "instance", *bad(d, what)))
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip().count("\n") == 0 and "napari-bioimg: error:" in res.stderr, res.stderr
    assert message in res.stderr, res.stderr
    assert not (d / "m.pt").exists()


def test_folder_prediction_refuses_two_images_with_one_name(folders, capsys):
    d = folders
    assert main(train_args(d, "--task", "instance", "--image", str(d / "imgs" / "a.tif"), "--labels",
                           str(d / "masks" / "a_mask.tif"))) == 0
    np.save(d / "imgs" / "a.npy", np.zeros((40, 40), np.uint16))
    capsys.readouterr()
    assert main(["predict", "--model", str(d / "m.pt"), "--image", str(d / "imgs"), "--out", str(d / "out"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "a.npy and a.tif" in err and "would write the same result file" in err
    assert not (d / "out").exists()


def test_a_huge_image_among_small_ones_is_read_lazily(folders, capsys):
    """A 20k x 20k zarr (0.8 GB as uint16) next to small TIFFs: training reads only what it samples."""
    d = folders
    big = zarr.create_array(store=str(d / "imgs" / "huge.zarr"), shape=(20000, 20000), chunks=(1024, 1024),
                            dtype="uint16", fill_value=60)
    big[5000:5100, 7000:7100] = 300  # something to see; the rest is the fill value (nothing stored)
    tracemalloc.start()
    try:
        assert main(train_args(d, "--task", "denoise", "--image", str(d / "imgs"))) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 150 * 2**20, peak  # the image would be 800 MB
    assert "4 image(s)" in capsys.readouterr().err


def test_classification_triples_from_folders(tmp_path, capsys):
    from tests.conftest import make_objects2d

    for sub in ("imgs", "objects", "classes"):
        (tmp_path / sub).mkdir()
    for seed, shape in ((0, (100, 140)), (1, (120, 100))):
        image, labels, truth = make_objects2d(seed, shape)
        tifffile.imwrite(tmp_path / "imgs" / f"f{seed}.tif", image)
        tifffile.imwrite(tmp_path / "objects" / f"f{seed}.tif", labels)
        rows = [f"{i},{c}" for i, c in list(truth.items())[::2]]
        (tmp_path / "classes" / f"f{seed}_classes.csv").write_text("label_id,class\n" + "\n".join(rows) + "\n")
    assert main(["train", "--task", "classify", "--image", str(tmp_path / "imgs"), "--labels",
                 str(tmp_path / "objects"), "--classes", str(tmp_path / "classes"), "--out", str(tmp_path / "m.pt"),
                 "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "8", "--quiet"]) == 0
    assert load_checkpoint(tmp_path / "m.pt")["task"]["meta"]["class_names"] == ["dim", "long", "round"]
