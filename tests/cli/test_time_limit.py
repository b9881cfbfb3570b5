"""The time limit is the user's clock (issue 20.3): ``train --time-limit T`` returns the finished model, final
validation and calibration included, within T (+2%) of training time."""

import tifffile
import torch

from napari_bioimg._sample_data import SLICE_2D, load_nuclei_3d
from napari_bioimg.cli import main

T = 20.0


def test_train_returns_the_calibrated_model_within_the_time_limit(tmp_path):
    image, labels = load_nuclei_3d()  # the napari sample "nuclei (2D)": one in-focus slice and its labels
    tifffile.imwrite(tmp_path / "img.tif", image[SLICE_2D])
    tifffile.imwrite(tmp_path / "lbl.tif", labels[SLICE_2D])
    assert main(["train", "--task", "instance", "--image", str(tmp_path / "img.tif"), "--labels",
                 str(tmp_path / "lbl.tif"), "--time-limit", str(T), "--out", str(tmp_path / "m.pt"), "--quiet"]) == 0
    ckpt = torch.load(tmp_path / "m.pt", map_location="cpu", weights_only=False)
    meta = ckpt["task"]["meta"]
    assert "calibration" in meta  # the post-processing settings were chosen, inside the budget
    seconds = ckpt["training"]["seconds"]  # the engine's clock: training start to the calibrated model
    assert seconds <= T * 1.02, f"training took {seconds:.2f} s of a {T:g} s time limit"
    assert seconds >= 0.6 * T  # and the budget was used, not given away
