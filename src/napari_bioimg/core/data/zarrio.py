"""Opening images lazily (zarr, OME-Zarr, TIFF through tifffile's zarr interface, dask) and creating zarr outputs.

Nothing here reads a whole image: arrays are returned as zarr/dask/memory-mapped
objects that are sliced block by block by :mod:`.lazy`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

ZARR_SUFFIXES = (".zarr",)
OME_AXIS = {"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}


def _zarr():
    """The zarr module, or a clear message saying how to get it."""
    try:
        import zarr
    except ImportError:
        raise InputError("zarr is needed for images larger than memory and .zarr files: "
                         "pip install 'napari-bioimg[bigdata]'") from None
    return zarr


def is_zarr_path(path: str | os.PathLike) -> bool:
    """``*.zarr`` / ``*.ome.zarr`` (an existing zarr folder, or the name of one to create)."""
    name = str(path).rstrip("/\\").lower()
    return name.endswith(ZARR_SUFFIXES)


def is_ome_path(path: str | os.PathLike) -> bool:
    return str(path).rstrip("/\\").lower().endswith(".ome.zarr")


def is_lazy_array(image: Any) -> bool:
    """True for array-likes that are not in memory (zarr, dask, tifffile stores, memory maps)."""
    if isinstance(image, np.memmap):
        return True
    return not isinstance(image, np.ndarray) and hasattr(image, "shape") and hasattr(image, "dtype")


def first_level(image: Any) -> Any:
    """napari hands multiscale data as a list of levels, finest first; predict the finest."""
    if isinstance(image, (list, tuple)) and image and hasattr(image[0], "shape"):
        return image[0]
    return image


def multiscales(attrs: dict) -> dict | None:
    """The first ``multiscales`` entry of OME-Zarr attributes (0.4 at the top level, 0.5 under ``ome``)."""
    ms = attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")
    return ms[0] if ms else None


def open_image(path: str | os.PathLike) -> tuple[Any, str | None, dict]:
    """Open an image without loading it; return ``(array, axes hint or None, metadata)``.

    ``.zarr`` folders (a plain array, an OME-Zarr group whose finest level is
    used, or a group holding one array), ``.tif``/``.tiff`` (tifffile's zarr
    store: pages and tiles are read on demand) and ``.npy`` (memory-mapped).
    ``metadata`` may hold ``scale`` (per axis) for OME-Zarr inputs.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if is_zarr_path(path) or (path.is_dir() and ((path / "zarr.json").exists() or (path / ".zarray").exists()
                                                     or (path / ".zgroup").exists())):
            return _open_zarr(path)
        if suffix in (".tif", ".tiff"):
            import tifffile

            zarr = _zarr()
            with tifffile.TiffFile(path) as tif:
                axes = tif.series[0].axes
            store = tifffile.imread(path, aszarr=True, series=0, level=0)
            arr = zarr.open_array(store, mode="r")
            hint = axes if axes and set(axes.upper()) <= set("TZYXCSQI") and "Q" not in axes else None
            return arr, hint, {}
        if suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False), None, {}
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"could not open {path.name}: {type(err).__name__}: {err}") from None
    raise InputError(f"cannot open {path.name} lazily; use a .zarr / .ome.zarr folder, a .tif or a .npy file")


def close_image(array: Any) -> None:
    """Release what :func:`open_image` holds open (a TIFF's file handle); other arrays need nothing."""
    try:
        from tifffile.zarr import ZarrTiffStore
    except ImportError:
        return
    store = getattr(array, "store", None)
    if isinstance(store, ZarrTiffStore):
        store.close()


@contextmanager
def opened_image(path: str | os.PathLike) -> Iterator[tuple[Any, str | None, dict]]:
    """:func:`open_image` for the length of a ``with`` block, closed after it."""
    array, hint, meta = open_image(path)
    try:
        yield array, hint, meta
    finally:
        close_image(array)


def _open_zarr(path: Path) -> tuple[Any, str | None, dict]:
    zarr = _zarr()
    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        return node, None, {}
    ms = multiscales(dict(node.attrs))
    if ms is not None:
        level0 = ms["datasets"][0]
        arr = node[level0["path"]]
        axes = ms.get("axes")
        hint = None
        if axes:
            names = [a["name"] if isinstance(a, dict) else a for a in axes]
            letters = [OME_AXIS.get(str(n).lower()) for n in names]
            hint = "".join(letters) if all(letters) else None
        scale = None
        for tr in level0.get("coordinateTransformations", []):
            if tr.get("type") == "scale":
                scale = [float(v) for v in tr["scale"]]
        return arr, hint, {"scale": scale, "axes_names": axes}
    arrays = list(node.array_keys())
    if len(arrays) == 1:
        return node[arrays[0]], None, {}
    raise InputError(
        f"{path.name} is a zarr group without OME-Zarr 'multiscales' metadata holding {len(arrays)} arrays; "
        "point to one array inside it (e.g. image.zarr/0)"
    )


def read(array: Any, index: tuple) -> np.ndarray:
    """``array[index]`` as numpy (computes dask, decodes zarr chunks)."""
    part = array[index]
    if hasattr(part, "compute"):
        part = part.compute()
    return np.asarray(part)


def create_output(path: str | os.PathLike, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any,
                  axes: str, scale: list[float] | None = None):
    """Create an empty zarr array at ``path`` (an OME-Zarr 0.4 group with level ``0`` for ``*.ome.zarr``)."""
    zarr = _zarr()

    path = str(path)
    if is_ome_path(path):
        group = zarr.open_group(path, mode="w", zarr_format=2)
        arr = group.create_array("0", shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
        kinds = {"T": "time", "C": "channel"}
        scale = list(scale) if scale and len(scale) == len(axes) else [1.0] * len(axes)
        group.attrs["multiscales"] = [{
            "version": "0.4",
            "name": Path(path).name,
            "axes": [{"name": a.lower(), "type": kinds.get(a, "space")} for a in axes],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
        }]
        return arr
    return zarr.create_array(store=path, shape=shape, chunks=chunks, dtype=dtype, fill_value=0, zarr_format=3,
                             overwrite=True)


def open_output(path: str | os.PathLike, mode: str = "r"):
    """The array written by :func:`create_output`."""
    zarr = _zarr()

    node = zarr.open(str(path), mode=mode)
    return node if isinstance(node, zarr.Array) else node["0"]


def store_location(array: Any) -> str:
    """Where a zarr array lives (a folder path for local stores)."""
    sp = getattr(array, "store_path", None)
    root = getattr(getattr(sp, "store", None), "root", None)
    if root is not None:
        return str(Path(str(root)) / (sp.path or ""))
    return str(sp or "a zarr store")
