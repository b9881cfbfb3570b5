"""Helpers between napari layers and the engine's arrays (main thread only)."""

from __future__ import annotations

import numpy as np

OWNER_KEY = "napari_bioimg"


def axes_choices(layer) -> list[str]:
    """Axis layouts that make sense for an image layer, the default first."""
    if layer is None:
        return ["YX"]
    ndim = layer.data.ndim if not layer.multiscale else layer.data[0].ndim
    if getattr(layer, "rgb", False):
        return {3: ["YXC"], 4: ["TYXC", "ZYXC"]}.get(ndim, ["YXC"])
    choices = {2: ["YX"], 3: ["ZYX", "TYX"], 4: ["TZYX", "CZYX", "TCYX"], 5: ["TCZYX"]}.get(ndim, ["YX"])
    named = labelled_axes(layer, ndim)
    if named:  # the layer says what its axes are (e.g. axis_labels t, y, x): offer that first
        choices = [named] + [c for c in choices if c != named]
    return choices


def labelled_axes(layer, ndim: int) -> str | None:
    """Axes spelled by the layer's ``axis_labels`` (``("t", "y", "x")`` -> ``"TYX"``), if they are axis letters."""
    labels = [str(a).upper() for a in getattr(layer, "axis_labels", ())]
    axes = "".join(labels)
    if len(labels) == ndim and all(len(a) == 1 for a in labels) and set(axes) <= set("TSZYXC") \
            and len(set(axes)) == ndim and axes.endswith("YX"):
        return axes
    return None


def layer_data(layer):
    """The full-resolution data of a layer as it is: numpy, or a lazy dask / zarr array for big images."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def is_ours(layer) -> bool:
    return bool(layer.metadata.get(OWNER_KEY))


# A plugin widget opened from napari's Plugins menu gets a proxy of the viewer whose layers come back as new
# proxy objects at every access, so ``a is b`` (and ``id``) cannot tell whether two references are the same
# layer. napari's ``unique_id`` can: it is fixed for a layer's lifetime and the same through any proxy.


def layer_key(layer):
    """A stable key for ``layer``: the same for every reference to it (proxied or not), never reused."""
    return layer.unique_id


def same_layer(a, b) -> bool:
    """Whether ``a`` and ``b`` are the same napari layer (either may be a proxy, a name or ``None``)."""
    if a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return a is b or (isinstance(a, str) and a == b)
    return layer_key(a) == layer_key(b)


def find_layer(viewer, key):
    """The layer of ``viewer`` whose :func:`layer_key` is ``key``, or ``None`` when it was removed."""
    if key is None:
        return None
    return next((layer for layer in viewer.layers if layer_key(layer) == key), None)


def in_viewer(viewer, layer) -> bool:
    """Whether ``layer`` is still one of the viewer's layers."""
    return layer is not None and find_layer(viewer, layer_key(layer)) is not None


def data_shape(layer) -> tuple[int, ...]:
    """Shape of the layer's full-resolution data, read from its metadata: never computes a lazy array."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return tuple(int(s) for s in data.shape)


def snapshot(layer):
    """The layer's data for a background run: a private copy of an in-memory array (the user may go on
    painting while the worker reads it), a lazy (dask, zarr) array as it is (the worker reads what it needs).

    Cheap on the GUI thread either way: a memory copy, or nothing.
    """
    data = layer_data(layer)
    if isinstance(data, np.ndarray):
        return np.array(data, copy=True)
    return data


def data_index(layer, viewer) -> tuple[int, ...]:
    """The viewer's current position as an integer index into ``layer``'s data."""
    try:
        coords = layer.world_to_data(viewer.dims.point[-layer.ndim :])
    except Exception:  # very old napari or odd transforms: fall back to the first frame
        return (0,) * layer.ndim
    return tuple(int(np.clip(round(float(c)), 0, s - 1)) for c, s in zip(coords, layer.data.shape))


def batch_index(axes: str, spatial_dims: int, index: tuple[int, ...]) -> tuple[int, ...]:
    """Pick the entries of ``index`` (over the image's non-channel axes) that are batch axes."""
    spatial = "ZYX" if spatial_dims == 3 else "YX"
    out_axes = axes.replace("C", "")
    return tuple(i for a, i in zip(out_axes, index) if a not in spatial)


def match_contrast(layer, source) -> None:
    """Show an image result like its source: same contrast limits (it has the source's intensity range)."""
    if getattr(source, "rgb", False) or source.data.ndim != layer.data.ndim:
        layer.reset_contrast_limits()
        return
    lo, hi = source.contrast_limits_range
    rlo, rhi = layer.contrast_limits_range
    layer.contrast_limits_range = (min(lo, rlo), max(hi, rhi))
    layer.contrast_limits = source.contrast_limits


def result_layer(viewer, source, name: str, kind: str, shape: tuple[int, ...], dtype, axes: str):
    """Find our own result layer called ``name`` or add a new one aligned with ``source``.

    A layer of that name that the user made (not ours) is never reused: the new
    layer gets a distinct name instead, so the user's layers are never modified.
    """
    for layer in viewer.layers:
        if layer.name == name and is_ours(layer) and layer.data.shape == tuple(shape) \
                and layer.__class__.__name__.lower() == kind:
            return layer
    unique, scale, translate = _aligned(viewer, source, name, axes)
    return _add(viewer, kind, np.zeros(shape, dtype=dtype), unique, scale, translate, source)


def _aligned(viewer, source, name: str, axes: str):
    """A free layer name and the source's scale/translate restricted to its non-channel axes."""
    keep = [i for i, a in enumerate(axes) if a != "C"] if not getattr(source, "rgb", False) else None
    scale = np.asarray(source.scale)
    translate = np.asarray(source.translate)
    if keep is not None and len(keep) != len(scale):
        keep = None
    if keep is not None and len(keep) < len(scale):
        scale, translate = scale[keep], translate[keep]
    taken = {layer.name for layer in viewer.layers}
    unique = name
    n = 1
    while unique in taken:
        unique = f"{name} ({n})"
        n += 1
    return unique, scale, translate


def _add(viewer, kind: str, data, name: str, scale, translate, source):
    meta = {OWNER_KEY: True, "source": source.name}
    if kind == "labels":
        return viewer.add_labels(data, name=name, scale=scale, translate=translate, metadata=meta)
    layer = viewer.add_image(data, name=name, scale=scale, translate=translate, metadata=meta)
    return layer


def add_lazy_result(viewer, source, name: str, kind: str, data, axes: str):
    """Add a result that lives in a zarr store (too big for memory) as a new lazily displayed layer."""
    unique, scale, translate = _aligned(viewer, source, name, axes)
    if len(scale) != data.ndim:  # e.g. an image result with an added channel axis
        scale, translate = None, None
    return _add(viewer, kind, data, unique, scale, translate, source)


# ---------------------------------------------------------------- what a layer looks like (for picking)

CLEAN_HINTS = ("clean", "reference", "ground truth", "groundtruth", "gt", "target", "high snr", "high-snr")
"""Words in a layer name that say it is a clean image of the same pixels (a reference or target)."""


def fits(labels, image) -> bool:
    """Whether ``labels`` covers ``image``'s pixels (shapes only: a lazy layer is never computed here)."""
    shape, ishape = data_shape(labels), data_shape(image)
    return shape == ishape or (bool(getattr(image, "rgb", False)) and shape == ishape[:-1])


def sounds_clean(name: str) -> bool:
    words = name.lower().replace("(", " ").replace(")", " ").replace("_", " ")
    return any(f" {hint} " in f" {words} " for hint in CLEAN_HINTS)


def label_stats(layer, budget: int = 1_000_000) -> tuple[int, float] | None:
    """``(number of non-zero ids, fraction of pixels labelled)`` of an in-memory Labels layer, on at most
    ``budget`` pixels (a regular subsample); ``None`` for lazy data (never computed on the GUI thread)."""
    data = layer_data(layer)
    if not isinstance(data, np.ndarray) or data.size == 0:
        return None
    step = 1
    while data.size / step ** min(data.ndim, 3) > budget:
        step += 1
    sub = data[tuple(slice(None, None, step) if i >= data.ndim - 3 else slice(None) for i in range(data.ndim))]
    nonzero = sub[sub != 0]
    return int(np.unique(nonzero).size), float(nonzero.size / sub.size)


def looks_like_instances(stats: tuple[int, float] | None) -> bool:
    """Many ids over a sizeable area: one id per object (instance masks), not a few painted classes."""
    if stats is None:
        return False
    n_ids, fraction = stats
    return n_ids > 30 or (n_ids >= 8 and fraction >= 0.02)


def looks_like_scribbles(stats: tuple[int, float] | None) -> bool:
    """A few classes (or nothing painted yet)."""
    return stats is not None and stats[0] < 8


def active_key(viewer):
    """The key of the selected (active) layer, or ``None``."""
    active = viewer.layers.selection.active
    return layer_key(active) if active is not None else None


def select(viewer, key) -> None:
    """Make the layer with ``key`` the selected one (the brush paints into it)."""
    layer = find_layer(viewer, key)
    if layer is not None and viewer.layers.selection.active is not None \
            and layer_key(viewer.layers.selection.active) == key:
        return
    if layer is not None:
        viewer.layers.selection.active = layer


def rank_annotations(candidates: list, *, scribbles: bool, current=None, repick: bool = False) -> list | None:
    """Labels layers that suit a task, best first: masks for objects, scribbles for classes.

    ``None`` when ``current`` may stay (it suits, or ``repick`` is off). An instance-looking mask
    is never offered for a scribbles task. Statistics are read from a subsample of in-memory
    data only (nothing for lazy data).
    """
    stats: dict = {}

    def suits(layer) -> int:  # 2: suits, 1: might (unknown or second best), 0: not for this task
        key = layer_key(layer)
        if key not in stats:
            stats[key] = label_stats(layer)
        s = stats[key]
        if scribbles:
            return 0 if looks_like_instances(s) else (2 if looks_like_scribbles(s) else 1)
        return 2 if looks_like_instances(s) else 1

    if current is not None and (not repick or suits(current) == 2 or (suits(current) == 1 and not scribbles)):
        return None
    return sorted((c for c in candidates if suits(c)), key=suits, reverse=True)
