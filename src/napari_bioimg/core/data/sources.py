"""Image sources: one image of a data set, opened without reading its pixels.

A :class:`Source` is an array-like (a file on disk, a zarr / OME-Zarr store, a dask
array, a numpy array or a napari layer's data) plus its axis letters and a name for
messages. Its pixels are read region by region with :func:`read_region`, in the
engine's order ``(C, *box)`` for one *plane* (a sample along the non-spatial axes,
numbered flat as :meth:`Layout.sample_index` does), so that training reads only the
patches it samples: a 20k x 20k image among small ones is never read whole.

Files are opened lazily and at most :data:`MAX_OPEN` at once (TIFF and NPY files
hold a file descriptor each; 200 image/label pairs must not exhaust the limit,
which is 256 on macOS). TIFFs are memory-mapped when they are stored uncompressed
and contiguous, otherwise read through tifffile's zarr interface tile by tile.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .axes import Layout, check_axes, infer_axes
from .zarrio import first_level, is_zarr_path, open_image

TIFF_SUFFIXES = (".tif", ".tiff")
EAGER_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Formats without random access: read whole when first needed (they are small by nature)."""
IMAGE_SUFFIXES = TIFF_SUFFIXES + EAGER_SUFFIXES + (".npy",)
"""Files that are images (besides ``.zarr`` / ``.ome.zarr`` folders)."""
MAX_OPEN = 64
"""Files held open at once; the least recently read one is closed when another opens."""
#: Values per channel above which percentiles are estimated on a subsample (as :mod:`.normalize`).
MAX_PERCENTILE_VALUES = 2_000_000
#: Windows read to estimate the percentiles of a big image (each a chunk-aligned box of one plane).
PERCENTILE_WINDOWS = 64


def is_image_path(path: Path) -> bool:
    """An image file (TIFF, PNG/JPEG, NPY) or a zarr folder; hidden files are not images."""
    if path.name.startswith("."):
        return False
    if path.is_dir():
        return is_zarr_path(path) or any((path / f).exists() for f in ("zarr.json", ".zarray", ".zgroup"))
    return path.suffix.lower() in IMAGE_SUFFIXES


class _OpenFiles:
    """Least-recently-used set of open file-backed sources (bounded file descriptors).

    Thread-safe: samplers read patches from several threads. A source being read is
    never closed under its reader; the set may then exceed its limit for a moment.
    The set holds its sources weakly: a source nobody uses any more closes its file
    when it is collected (:meth:`Source.__del__`), not when the process ends.
    """

    def __init__(self, limit: int = MAX_OPEN):
        self.limit = limit
        self.items: OrderedDict[int, weakref.ref[Source]] = OrderedDict()
        self.lock = threading.RLock()

    def acquire(self, source: Source) -> Any:
        """Open ``source`` if needed, mark it in use and most recent; return its array."""
        with self.lock:
            arr = source._open()
            source._users += 1
            key = id(source)
            self.items[key] = weakref.ref(source)
            self.items.move_to_end(key)
            if len(self.items) > self.limit:
                live = [(k, r()) for k, r in self.items.items()]
                for k, s in live:
                    if s is None:
                        self.items.pop(k)
                for k, s in [(k, s) for k, s in live if s is not None and s._users == 0][
                        : len(self.items) - self.limit]:
                    self.items.pop(k)
                    s._release()
            return arr

    def release(self, source: Source) -> None:
        with self.lock:
            source._users -= 1

    def forget(self, source: Source) -> None:
        with self.lock:
            self.items.pop(id(source), None)
            source._release()


_OPEN = _OpenFiles()


def _open_tiff(path: Path) -> tuple[Any, str | None, Callable[[], None] | None]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = series.axes
        mappable = getattr(series, "dataoffset", None) is not None and not getattr(series, "is_multifile", False)
    hint = axes if axes and set(axes.upper()) <= set("TZYXCSQI") and "Q" not in axes else None
    if mappable:
        try:
            return tifffile.memmap(path, mode="r"), hint, None
        except (ValueError, OSError):
            pass  # compressed, tiled or strided: read through the zarr interface instead
    arr, hint2, _ = open_image(path)
    store = getattr(arr, "store", None)
    return arr, hint or hint2, getattr(store, "close", None)


def _open_path(path: Path) -> tuple[Any, str | None, Callable[[], None] | None]:
    """``(array, axes hint, close or None)`` for an image file or zarr folder, without reading pixels."""
    if not path.exists():
        raise InputError(f"file not found: {path}")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".npy":
        arr, hint, _ = open_image(path)
        return arr, hint, None
    if suffix in TIFF_SUFFIXES:
        try:
            return _open_tiff(path)
        except InputError:
            raise
        except Exception as err:
            raise InputError(f"could not read {path.name}: {type(err).__name__}: {err}") from None
    if suffix in EAGER_SUFFIXES:
        from .io import read_image

        arr, hint = read_image(path)
        return arr, hint, None
    raise InputError(f"unsupported image format {suffix!r} for {path.name}; use .tif, .png, .npy or .zarr")


class Source:
    """One array of a data set (an image, its annotations or a target), opened lazily.

    Parameters
    ----------
    data
        A path (``str`` / ``Path``: TIFF, PNG, NPY, zarr / OME-Zarr folder) or an
        array-like with ``shape``, ``dtype`` and numpy-style slicing (numpy, memmap,
        zarr, dask; a napari multiscale list uses its finest level).
    axes
        Axis letters (``"YX"``, ``"ZYX"``, ``"TYXC"``, ...); guessed from the shape
        and the file's own metadata when ``None``.
    name
        Shown in messages (default: the file name, or ``"image"``).
    rgb
        Guess a trailing 3/4-long axis as colour channels (napari's ``rgb`` flag).
    hint
        Axes a reader recorded (e.g. tifffile's ``"ZYX"``), used when ``axes`` is ``None``.
    """

    def __init__(self, data: Any, axes: str | None = None, *, name: str | None = None, rgb: bool = False,
                 hint: str | None = None):
        self.path: Path | None = None
        self._array: Any = None
        self._close: Callable[[], None] | None = None
        self._holds_file = False
        self._users = 0
        if isinstance(data, (str, os.PathLike)):
            self.path = Path(data)
            self._array, file_hint, self._close = _open_path(self.path)
            hint = hint or file_hint
            # TIFF and NPY files keep a descriptor open (memory map, file handle); zarr folders open per
            # chunk read and PNG/JPEG are read whole, so only the former count against the limit
            self._holds_file = self.path.suffix.lower() in TIFF_SUFFIXES + (".npy",) and self.path.is_file()
            if self._holds_file:
                _OPEN.acquire(self)
                _OPEN.release(self)
        else:
            data = first_level(data)
            if not (hasattr(data, "shape") and hasattr(data, "dtype")):
                data = np.asarray(data)
            self._array = data
        self.name = name or (self.path.name if self.path is not None else "image")
        self.shape: tuple[int, ...] = tuple(int(s) for s in self._array.shape)
        self.dtype = np.dtype(self._array.dtype)
        if self.dtype.kind not in "biuf":
            raise InputError(f"{self.name} must hold numbers, got dtype {self.dtype}")
        try:
            self.axes = check_axes(axes, len(self.shape)) if axes else infer_axes(self.shape, rgb=rgb, hint=hint)
        except InputError as err:
            raise InputError(f"{self.name}: {err}") from None
        self.chunks = _chunk_shape(self._array)

    @property
    def array(self) -> Any:
        """The array-like (reopened when the file was closed to bound open files)."""
        return self._open()

    def _open(self) -> Any:
        if self._array is None:
            assert self.path is not None
            self._array, _, self._close = _open_path(self.path)
        return self._array

    @property
    def lazy(self) -> bool:
        """True when the pixels are not held in memory (file, zarr, dask, memory map)."""
        arr = self._array
        return arr is None or isinstance(arr, np.memmap) or not isinstance(arr, np.ndarray)

    def close(self) -> None:
        """Release the file (reopened on the next read); arrays and zarr folders are kept."""
        if self._holds_file:
            _OPEN.forget(self)

    def __del__(self) -> None:
        try:
            if self._holds_file:
                _OPEN.items.pop(id(self), None)
            self._release()
        except Exception:  # interpreter shutdown: modules may be gone already
            pass

    def _release(self) -> None:
        if self._close is not None:
            try:
                self._close()
            except Exception:  # a store that fails to close must not break training
                pass
        self._array, self._close = None, None

    def __getitem__(self, index: tuple) -> np.ndarray:
        """``array[index]`` as numpy (computes dask, decodes zarr chunks); safe from several threads."""
        if not self._holds_file:
            part = self._open()[index]
        else:
            arr = _OPEN.acquire(self)
            try:
                part = arr[index]
            finally:
                _OPEN.release(self)
        if hasattr(part, "compute"):
            part = part.compute()
        return np.asarray(part)

    def __repr__(self) -> str:
        return f"Source({self.name!r}, axes={self.axes!r}, shape={self.shape}, dtype={self.dtype})"


def _chunk_shape(array: Any) -> tuple[int, ...] | None:
    """The array's chunk shape (zarr ints, dask's first chunk per axis), or ``None`` for plain arrays."""
    chunks = getattr(array, "chunks", None)
    if not chunks:
        return None
    try:
        return tuple(int(c[0]) if isinstance(c, tuple) else int(c) for c in chunks)
    except (TypeError, ValueError, IndexError):
        return None


def label_layout(layout: Layout) -> Layout:
    """The layout of annotations for an image with ``layout``: the image's axes without C."""
    return Layout(layout.output_axes, layout.output_shape, layout.spatial_dims)


def _index(layout: Layout, plane: int, box: tuple[slice, ...]) -> tuple[tuple, list[str]]:
    sample = layout.sample_index(plane)
    idx: list[Any] = []
    for a in layout.axes:
        if a in layout.batch_axes:
            idx.append(sample[layout.batch_axes.index(a)])
        elif a == "C":
            idx.append(slice(None))
        else:
            idx.append(box[layout.spatial_axes.index(a)])
    return tuple(idx), [a for a in layout.axes if a not in layout.batch_axes]


def read_region(source: Source, layout: Layout, plane: int, box: tuple[slice, ...]) -> np.ndarray:
    """``(C, *box)`` of one plane in the source's dtype (``C = 1`` without a channel axis)."""
    idx, kept = _index(layout, plane, box)
    arr = source[idx]
    target = (["C"] if "C" in kept else []) + list(layout.spatial_axes)
    arr = arr.transpose([kept.index(a) for a in target])
    return arr if "C" in kept else arr[None]


def full_box(layout: Layout) -> tuple[slice, ...]:
    return tuple(slice(0, s) for s in layout.spatial_shape)


def spatial_chunks(source: Source, layout: Layout, default: int = 512) -> tuple[int, ...]:
    """Chunk edge per spatial dim in the canonical order (``default`` where the array has no chunks)."""
    if source.chunks is None:
        return tuple(min(default, s) for s in layout.spatial_shape)
    return tuple(max(1, min(source.chunks[layout.axes.index(a)], s))
                 for a, s in zip(layout.spatial_axes, layout.spatial_shape))


def subsample(source: Source, layout: Layout, max_values: int = MAX_PERCENTILE_VALUES,
              rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Per channel, up to about ``max_values`` finite values of the image, read without reading it whole.

    Small images give every value. Big ones give values from
    :data:`PERCENTILE_WINDOWS` chunk-aligned windows of random planes, read with a
    stride: only those chunks are decoded.
    """
    rng = rng or np.random.default_rng(0)
    spatial = layout.spatial_shape
    per_plane = int(np.prod(spatial))
    nd = layout.spatial_dims
    if layout.n_samples * per_plane <= max_values:
        boxes = [(p, full_box(layout)) for p in range(layout.n_samples)]
        stride = 1
    else:
        window = spatial_chunks(source, layout)
        grid = [math.ceil(s / w) for s, w in zip(spatial, window)]
        n_windows = layout.n_samples * int(np.prod(grid))
        picks = rng.choice(n_windows, min(PERCENTILE_WINDOWS, n_windows), replace=False)
        window_px = int(np.prod(window))
        stride = max(1, math.ceil((window_px * len(picks) / max_values) ** (1 / nd)))
        boxes = []
        for flat in np.sort(picks):
            plane, cell = divmod(int(flat), int(np.prod(grid)))
            pos = np.unravel_index(cell, grid)
            boxes.append((plane, tuple(slice(int(i) * w, min(s, (int(i) + 1) * w))
                                       for i, w, s in zip(pos, window, spatial))))
    values: list[list[np.ndarray]] = [[] for _ in range(layout.n_channels)]
    for plane, box in boxes:  # one window in memory at a time; only its strided values are kept
        part = read_region(source, layout, plane, box)
        for c in range(layout.n_channels):
            values[c].append(np.ascontiguousarray(part[(c,) + (slice(None, None, stride),) * nd]).ravel())
    out = []
    for vals in values:
        v = np.concatenate(vals).astype(np.float64, copy=False)
        out.append(v[np.isfinite(v)])
    return out
