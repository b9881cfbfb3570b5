"""``napari-bioimg predict`` turns its flags into one ``PredictConfig`` and hands that object to the engine."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import tifffile

from napari_bioimg.cli import main
from napari_bioimg.cli.flags import config_from
from napari_bioimg.cli.parser import build_parser
from napari_bioimg.core import PredictConfig

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REQUIRED = ["predict", "--model", "m.pt", "--image", "i.tif", "--out", "o.tif"]


def test_the_flags_given_make_the_config_and_the_rest_keep_their_declared_defaults():
    args = build_parser().parse_args(REQUIRED + ["--tile", "32", "128", "128", "--overlap", "0.1", "--batch-size",
                                                 "2", "--block", "512", "--label-margin", "0", "--tta",
                                                 "--workers", "3"])
    assert config_from(args, PredictConfig) == PredictConfig(tile=(32, 128, 128), overlap=0.1, batch_size=2,
                                                             block=512, label_margin=0, tta=True, workers=3)
    assert config_from(build_parser().parse_args(REQUIRED), PredictConfig) == PredictConfig()


def test_predict_hands_the_config_to_the_engine(tmp_path, monkeypatch):
    engine = importlib.import_module("napari_bioimg.core.inference.predict")
    real, seen = engine.predict, []

    def spy(model, image, config=None, **keywords):
        seen.append((image, config, keywords))
        return real(model, image, config, **keywords)

    monkeypatch.setattr(engine, "predict", spy)
    image = np.random.default_rng(0).random((48, 40)).astype(np.float32)
    tifffile.imwrite(tmp_path / "img.tif", image)
    code = main(["predict", "--model", str(FIXTURES / "model_v1.pt"), "--image", str(tmp_path / "img.tif"),
                 "--out", str(tmp_path / "out.tif"), "--tile", "32", "--overlap", "0.5", "--quiet"])
    assert code == 0 and tifffile.imread(tmp_path / "out.tif").shape == image.shape
    (source, config, keywords), = seen
    assert config == PredictConfig(tile=32, overlap=0.5)
    assert source.data == str(tmp_path / "img.tif") and keywords == {"lazy": False}  # read whole: a TIFF out
