"""Reading and writing images and tables (TIFF, PNG, NPY, CSV) for the CLI and scripts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import InputError

TIFF = (".tif", ".tiff")
PNG = (".png", ".jpg", ".jpeg")


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, str | None]:
    """Read an image; return ``(array, axes hint or None)``.

    The hint is tifffile's series axes (e.g. ``"ZYX"``, ``"TYX"``, ``"YXS"``) when
    the file records them.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                data = series.asarray()
                axes = series.axes
            hint = axes if axes and set(axes.upper()) <= set("TZYXCSQI") and "Q" not in axes else None
            return data, hint
        if suffix in PNG:
            from skimage import io

            data = io.imread(path)
            if data.ndim == 3 and data.shape[-1] == 4 and np.all(data[..., 3] == data[..., 3].flat[0]):
                data = data[..., :3]  # constant alpha channel carries nothing
            if data.ndim == 3 and data.shape[-1] == 3 and np.array_equal(data[..., 0], data[..., 1]) \
                    and np.array_equal(data[..., 1], data[..., 2]):
                data = data[..., 0]  # grey saved as RGB
            return data, "YXC" if data.ndim == 3 else "YX"
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), None
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"could not read {path.name}: {type(err).__name__}: {err}") from None
    raise InputError(f"unsupported image format {suffix!r} for {path.name}; use .tif, .png or .npy")


def write_image(path: str | os.PathLike, data: np.ndarray, axes: str | None = None) -> Path:
    """Write an image (TIFF with zlib compression, PNG or NPY) atomically-enough (temp + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    tmp = path.with_name(f".{path.name}.tmp{suffix}")
    try:
        if suffix in TIFF:
            import tifffile

            meta = {"axes": axes} if axes else None
            # results are grey stacks, never RGB: a 3-frame stack must not be stored as colour planes
            tifffile.imwrite(tmp, data, compression="zlib", metadata=meta, bigtiff=data.nbytes > 2**31,
                             photometric="minisblack")
        elif suffix == ".png":
            from skimage import io

            if data.ndim != 2 and not (data.ndim == 3 and data.shape[-1] in (3, 4)):
                raise InputError(f"PNG holds 2D images only; result has shape {data.shape}: write a .tif")
            if data.dtype.kind == "f":
                raise InputError("PNG cannot hold float results; write a .tif")
            if data.dtype.kind in "iu" and data.max() > 65535:
                raise InputError("labels exceed 65535, which PNG cannot hold; write a .tif")
            io.imsave(tmp, data.astype(np.uint16 if data.max() > 255 else np.uint8), check_contrast=False)
        elif suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, data)
        else:
            raise InputError(f"unsupported output format {suffix!r}; use .tif, .png or .npy")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
