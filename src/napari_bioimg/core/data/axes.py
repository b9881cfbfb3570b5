"""Axes: from the user's array layout to the engine's ``(N, C, *spatial)`` and back.

Axis letters: ``T`` time, ``S`` sample (independent images), ``Z``, ``Y``, ``X``
space, ``C`` channel. With a 2D model, ``Z`` is treated like ``T``: the stack is
processed slice by slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

ALLOWED = set("TSZYXC")


def infer_axes(shape: tuple[int, ...], rgb: bool = False, hint: str | None = None) -> str:
    """Guess axes for an image shape. ``hint`` is e.g. tifffile's series axes."""
    ndim = len(shape)
    if hint:
        hint = hint.upper().replace("S", "C") if hint.upper().endswith("YXS") else hint.upper()
        hint = hint.replace("Q", "T").replace("I", "T")
        if len(hint) == ndim and set(hint) <= ALLOWED and len(set(hint)) == ndim and "Y" in hint and "X" in hint:
            return hint
    if rgb and ndim >= 3:
        return "TYXC"[-ndim:] if ndim <= 4 else None  # type: ignore[return-value]
    if ndim == 2:
        return "YX"
    if ndim == 3:
        return "YXC" if shape[-1] in (3, 4) and shape[0] > 4 else "ZYX"
    if ndim == 4:
        return "ZYXC" if shape[-1] in (3, 4) and shape[0] > 4 else "TZYX"
    if ndim == 5:
        return "TZCYX"
    raise InputError(f"cannot guess axes for a {ndim}D image of shape {shape}; pass axes such as 'TZYX'")


def check_axes(axes: str, ndim: int) -> str:
    axes = axes.upper()
    if len(axes) != ndim:
        raise InputError(f"axes {axes!r} name {len(axes)} axes but the image has {ndim} (shape needs {ndim} letters)")
    bad = set(axes) - ALLOWED
    if bad:
        raise InputError(f"unknown axis letter(s) {''.join(sorted(bad))} in {axes!r}; use T, S, Z, Y, X, C")
    if len(set(axes)) != len(axes):
        raise InputError(f"axes {axes!r} repeat a letter")
    if "Y" not in axes or "X" not in axes:
        raise InputError(f"axes {axes!r} must contain Y and X")
    return axes


def spatial_dims_for(axes: str) -> int:
    """Default model dimensionality for these axes: 3 if there is a Z axis."""
    return 3 if "Z" in axes.upper() else 2


@dataclass(frozen=True)
class Layout:
    """How a user's array maps to ``(N, C, *spatial)``."""

    axes: str
    shape: tuple[int, ...]
    spatial_dims: int

    @property
    def spatial_axes(self) -> str:
        return "ZYX" if self.spatial_dims == 3 else "YX"

    @property
    def batch_axes(self) -> str:
        return "".join(a for a in self.axes if a not in self.spatial_axes and a != "C")

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[self.axes.index(a)] for a in self.batch_axes)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[self.axes.index(a)] for a in self.spatial_axes)

    @property
    def n_channels(self) -> int:
        return self.shape[self.axes.index("C")] if "C" in self.axes else 1

    @property
    def n_samples(self) -> int:
        return int(np.prod(self.batch_shape, dtype=np.int64)) if self.batch_axes else 1

    @property
    def output_axes(self) -> str:
        """Axes of a per-pixel result (the image's, without C)."""
        return self.axes.replace("C", "")

    @property
    def output_shape(self) -> tuple[int, ...]:
        return tuple(s for a, s in zip(self.axes, self.shape) if a != "C")

    def to_canonical(self, image: np.ndarray) -> np.ndarray:
        """``image`` (user layout) -> ``(N, C, *spatial)`` (a view where possible)."""
        order = [self.axes.index(a) for a in self.batch_axes]
        order += [self.axes.index("C")] if "C" in self.axes else []
        order += [self.axes.index(a) for a in self.spatial_axes]
        arr = np.transpose(np.asarray(image), order) if not hasattr(image, "chunks") else image.transpose(order)
        return arr.reshape((self.n_samples, self.n_channels) + self.spatial_shape)

    def check_labels_shape(self, shape: tuple[int, ...]) -> None:
        """Annotations of ``shape`` cover the image's pixels (its shape without C), else a message saying so."""
        if tuple(shape) != self.output_shape:
            raise InputError(
                f"annotation shape {tuple(shape)} does not match the image's {self.output_shape} "
                f"(axes {self.output_axes}); they must cover the same pixels"
            )

    def labels_to_canonical(self, labels: np.ndarray) -> np.ndarray:
        """Annotations in the image's layout without C -> ``(N, *spatial)``."""
        out_axes = self.output_axes
        self.check_labels_shape(tuple(labels.shape))
        order = [out_axes.index(a) for a in self.batch_axes] + [out_axes.index(a) for a in self.spatial_axes]
        return np.transpose(np.asarray(labels), order).reshape((self.n_samples,) + self.spatial_shape)

    def from_canonical(self, result: np.ndarray, channels: bool = False) -> np.ndarray:
        """``(N, *spatial)`` (or ``(N, C', *spatial)`` with ``channels``) -> the image's layout."""
        shape = self.batch_shape + ((result.shape[1],) if channels else ()) + self.spatial_shape
        arr = result.reshape(shape)
        src = self.batch_axes + ("C" if channels else "") + self.spatial_axes
        target = self.axes if channels and "C" in self.axes else self.output_axes
        if channels and "C" not in self.axes:
            target = self.output_axes[: len(self.output_axes) - self.spatial_dims] + "C" + self.spatial_axes
        return np.transpose(arr, [src.index(a) for a in target])

    def sample_index(self, n: int) -> tuple[int, ...]:
        """Flat sample number -> index along the batch axes."""
        return tuple(int(i) for i in np.unravel_index(n, self.batch_shape)) if self.batch_axes else ()


def make_layout(shape: tuple[int, ...], axes: str | None = None, spatial_dims: int | None = None,
                rgb: bool = False, hint: str | None = None) -> Layout:
    """Build a :class:`Layout`, checking that axes and model dimensionality agree."""
    axes = check_axes(axes or infer_axes(tuple(shape), rgb=rgb, hint=hint), len(shape))
    if spatial_dims is None:
        spatial_dims = spatial_dims_for(axes)
    if spatial_dims not in (2, 3):
        raise InputError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if spatial_dims == 3 and "Z" not in axes:
        raise InputError(
            f"a 3D model needs a Z axis but the image axes are {axes}; "
            "use a 2D model, or give axes with Z (e.g. 'ZYX')"
        )
    return Layout(axes=axes, shape=tuple(int(s) for s in shape), spatial_dims=spatial_dims)
