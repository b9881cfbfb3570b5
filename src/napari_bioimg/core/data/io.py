"""Reading and writing images (TIFF, PNG, NPY) and tables (CSV) for the CLI and scripts."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import InputError

TIFF = (".tif", ".tiff")
PNG = (".png", ".jpg", ".jpeg")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Write a file atomically: yield a temporary name beside ``path``; rename it over ``path`` on success.

    A crash or a full disk never leaves a half-written file where a good one was. The
    temporary file is created with ordinary permissions (the user's umask decides, as
    for any file they save), unlike ``tempfile.mkstemp``'s owner-only 0600.
    A failure to write (a full disk, no permission) is an :class:`InputError` naming the file
    and saying that nothing was lost.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        kept = "the file that was there is unchanged" if path.exists() else "no partial file was left"
        raise InputError(f"could not write {path}: {err.strerror or err}. Nothing was lost: {kept}; free some space "
                         "(or pick another folder) and save again") from err
    finally:
        if tmp.exists():
            tmp.unlink()


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
    """Write an image (TIFF with zlib compression, PNG or NPY) atomically (:func:`atomic_path`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TIFF + (".png", ".npy"):
        raise InputError(f"unsupported output format {suffix!r}; use .tif, .png or .npy")
    with atomic_path(path) as tmp:
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
        else:
            with open(tmp, "wb") as f:
                np.save(f, data)
    return path


def read_table(path: str | os.PathLike, default_columns: tuple[str, ...] = ("label_id", "class")) -> dict[str, list[str]]:
    """Read a CSV (comma, semicolon or tab separated) into ``{column: [values as text]}``.

    A file without a header row (its first cell is a number) gets ``default_columns``.
    """
    import csv

    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"could not read {path.name} as a text table: {type(err).__name__}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{path.name} is empty; expected a header row such as 'label_id,class' and one row per object")
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [[cell.strip() for cell in row] for row in csv.reader(lines, dialect)]
    header = rows[0]
    try:
        float(header[0])
        header, body = list(default_columns[: len(header)]), rows
        header += [f"column_{i}" for i in range(len(header), len(rows[0]))]
    except ValueError:
        body = rows[1:]
    width = len(header)
    short = [i + 2 for i, r in enumerate(body) if len(r) < width]
    if short:
        raise InputError(f"{path.name}: row(s) {', '.join(map(str, short[:5]))} have fewer than {width} cells")
    return {name: [r[i] for r in body] for i, name in enumerate(header)}


def write_table(path: str | os.PathLike, columns: dict[str, list]) -> Path:
    """Write ``{column: values}`` as a comma-separated file with a header row (temp + rename)."""
    import csv

    names = list(columns)
    n = len(columns[names[0]]) if names else 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        for i in range(n):
            writer.writerow([columns[c][i] for c in names])
    return Path(path)
