"""The ``embed`` command, through the CLI's own entry point (``main``) as ``napari-bioimg embed ...``."""

import csv

import numpy as np
import tifffile

from napari_bioimg.cli.main import main
from tests.conftest import make_objects2d


def run(argv) -> int:
    return main(list(argv))


def parse(*argv):
    return ["embed", *argv]


def test_embed_is_a_command_of_the_cli(tmp_path):
    """``napari-bioimg embed ...`` reaches the command through the CLI's own dispatcher."""
    image, labels, _ = make_objects2d()
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "obj.tif", labels)
    out = tmp_path / "emb.csv"
    assert main(["embed", "--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "obj.tif"),
                 "--out", str(out), "--steps", "3", "--quiet"]) == 0
    with open(out) as f:
        assert len(list(csv.reader(f))) == 1 + len(np.unique(labels)) - 1


def test_embed_writes_one_row_per_object(tmp_path, capsys):
    image, labels, _ = make_objects2d()
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "obj.tif", labels)
    out = tmp_path / "emb.csv"
    args = parse("--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "obj.tif"), "--out", str(out),
                 "--steps", "5", "--quiet")
    assert run(args) == 0
    with open(out) as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    k = len(header) - 3
    assert header == ["label_id", *[f"emb_{i}" for i in range(k)], "x2d", "y2d"] and k == 32
    assert [int(r[0]) for r in body] == list(np.unique(labels)[1:])
    assert all(np.isfinite([float(v) for v in r[1:]]).all() for r in body)
    err = capsys.readouterr().err
    assert "wrote" in err and "PCA" in err


def test_errors_are_one_line(tmp_path, capsys):
    image, labels, _ = make_objects2d()
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "empty.tif", np.zeros_like(labels))
    for argv, message in [
        (("--image", str(tmp_path / "missing.tif"), "--labels", str(tmp_path / "empty.tif")), "not found"),
        (("--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "empty.tif")), "empty"),
    ]:
        assert run(parse(*argv, "--out", str(tmp_path / "e.csv"), "--steps", "2", "--quiet")) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("napari-bioimg: error:") and message in err[0]
    assert run(parse("--image", str(tmp_path / "img.tif"), "--labels", str(tmp_path / "empty.tif"),
                     "--out", str(tmp_path / "e.tif"))) == 2
    assert "csv" in capsys.readouterr().err
    assert not (tmp_path / "e.csv").exists()
