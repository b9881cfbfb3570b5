"""The classification CLI contract: train with a classes CSV, predict a CSV or a class image, evaluate."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_bioimg.cli import main
from tests.conftest import make_objects2d

FAST = ["--epochs", "4", "--steps-per-epoch", "12", "--depth", "3", "--base-channels", "8", "--batch-size", "16",
        "--lr", "3e-3", "--quiet"]


def _write_csv(path, header, rows):
    path.write_text(header + "\n" + "".join(f"{a},{b}\n" for a, b in rows))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("classify")
    image, labels, truth = make_objects2d()
    tifffile.imwrite(d / "img.tif", image)
    tifffile.imwrite(d / "obj.tif", labels)
    picked = {}
    for i, c in truth.items():
        if sum(v == c for v in picked.values()) < 6:
            picked[i] = c
    _write_csv(d / "classes.csv", "label_id,class", picked.items())
    _write_csv(d / "truth.csv", "label_id,class", [(i, c) for i, c in truth.items() if i not in picked])
    return d, truth


def test_round_trip_with_csvs(files, capsys):
    d, truth = files
    assert main(["train", "--task", "classify", "--image", str(d / "img.tif"), "--labels", str(d / "obj.tif"),
                 "--classes", str(d / "classes.csv"), "--out", str(d / "m.pt"), *FAST]) == 0
    assert main(["predict", "--model", str(d / "m.pt"), "--image", str(d / "img.tif"), "--labels",
                 str(d / "obj.tif"), "--out", str(d / "pred.csv"), "--quiet"]) == 0
    lines = (d / "pred.csv").read_text().splitlines()
    assert lines[0] == "label_id,class,probability" and len(lines) == len(truth) + 1
    label_id, cls, prob = lines[1].split(",")
    assert int(label_id) == min(truth) and cls in {"round", "dim", "long"} and 0.3 <= float(prob) <= 1
    capsys.readouterr()
    assert main(["evaluate", "--task", "classify", "--pred", str(d / "pred.csv"), "--truth",
                 str(d / "truth.csv")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == len(truth) - 18 and report["n_missing"] == 0
    assert report["classes"] == ["dim", "long", "round"] and len(report["confusion_matrix"]) == 3
    assert set(report["per_class"]["dim"]) == {"precision", "recall", "f1", "support"}
    assert report["accuracy"] > 0.75


def test_class_image_output(files):
    d, truth = files
    if not (d / "m.pt").exists():
        pytest.skip("needs the model of test_round_trip_with_csvs")
    assert main(["predict", "--model", str(d / "m.pt"), "--image", str(d / "img.tif"), "--labels",
                 str(d / "obj.tif"), "--out", str(d / "pred.tif"), "--quiet"]) == 0
    out = tifffile.imread(d / "pred.tif")
    labels = tifffile.imread(d / "obj.tif")
    assert out.shape == labels.shape and set(np.unique(out)) <= {0, 1, 2, 3}
    assert np.all((out > 0) == (labels > 0))


def test_evaluate_counts_missing_predictions(tmp_path, capsys):
    _write_csv(tmp_path / "p.csv", "label_id,class", [(1, 2), (2, 2), (3, 1)])
    _write_csv(tmp_path / "t.csv", "label_id,class", [(1, 2), (2, 1), (3, 1), (4, 1)])
    assert main(["evaluate", "--task", "classify", "--pred", str(tmp_path / "p.csv"), "--truth",
                 str(tmp_path / "t.csv")]) == 0
    out = capsys.readouterr()
    rep = json.loads(out.out)
    assert rep["n"] == 3 and rep["n_missing"] == 1 and rep["classes"] == [1, 2]
    assert rep["accuracy"] == pytest.approx(2 / 3) and "no prediction" in out.err


def run(*args):
    return subprocess.run([sys.executable, "-m", "napari_bioimg.cli", *args], capture_output=True, text=True)


def test_bad_inputs_are_one_line(files, tmp_path):
    d, truth = files
    base = ["train", "--task", "classify", "--image", str(d / "img.tif"), "--out", str(tmp_path / "x.pt"),
            "--epochs", "1", "--steps-per-epoch", "1"]
    res = run(*base, "--labels", str(d / "obj.tif"))
    assert res.returncode == 2 and "--classes" in res.stderr and res.stderr.strip().count("\n") == 0
    tifffile.imwrite(tmp_path / "empty.tif", np.zeros((100, 140), np.uint16))
    res = run(*base, "--labels", str(tmp_path / "empty.tif"), "--classes", str(d / "classes.csv"))
    assert res.returncode == 2 and "objects layer is empty" in res.stderr
    _write_csv(tmp_path / "ghost.csv", "label_id,class", [(900, "a"), (901, "b")])
    res = run(*base, "--labels", str(d / "obj.tif"), "--classes", str(tmp_path / "ghost.csv"))
    assert res.returncode == 2 and "no annotated objects" in res.stderr
    (tmp_path / "bad.csv").write_text("object;kind\n1;a\n")
    res = run(*base, "--labels", str(d / "obj.tif"), "--classes", str(tmp_path / "bad.csv"))
    assert res.returncode == 2 and "no class column" in res.stderr
    assert not (tmp_path / "x.pt").exists()


def test_read_table_variants(tmp_path):
    from napari_bioimg.core.data.io import read_table, write_table
    from napari_bioimg.core.errors import InputError

    (tmp_path / "semi.csv").write_text("\ufefflabel_id;class\n1;a b\n2;c\n")
    assert read_table(tmp_path / "semi.csv") == {"label_id": ["1", "2"], "class": ["a b", "c"]}
    (tmp_path / "bare.csv").write_text("3,x\n4,y\n")
    assert read_table(tmp_path / "bare.csv", ("frame", "class")) == {"frame": ["3", "4"], "class": ["x", "y"]}
    (tmp_path / "empty.csv").write_text("\n")
    with pytest.raises(InputError, match="empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "short.csv").write_text("label_id,class\n1\n")
    with pytest.raises(InputError, match="fewer than 2 cells"):
        read_table(tmp_path / "short.csv")
    write_table(tmp_path / "out.csv", {"label_id": [1, 2], "class": ["a,b", "c"]})
    assert read_table(tmp_path / "out.csv") == {"label_id": ["1", "2"], "class": ["a,b", "c"]}
