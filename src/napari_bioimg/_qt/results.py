"""Result layers: the layer added when training starts, previews written in place, the final result,
results that live in a zarr store, and objects coloured by class.

Main thread only. A result always goes into a layer of our own (``<image> [<model>]``),
never into one of the user's; adding it keeps the user's annotation layer selected, so
the next brush stroke lands where the user meant it, and while training runs the result
layer is not editable (the next preview would overwrite any stroke in it).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import classes as C
from . import layers as L
from .session import Job


def _fits_in(data: np.ndarray, dtype) -> bool:
    """Whether ``data`` can be written into an array of ``dtype`` without changing any value's meaning."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return data.dtype.kind in "fiub"
    if dtype.kind in "iu" and data.dtype.kind in "iub":
        info = np.iinfo(dtype)
        return not data.size or (info.min <= int(data.min()) and int(data.max()) <= info.max)
    return False


def temporary_store(array) -> Path | None:
    """The temporary folder holding a zarr result the engine wrote for us (``<tmp>/napari-bioimg-*``), if it is one."""
    from ..core.data.zarrio import store_location

    try:
        path = Path(store_location(array))
    except Exception:  # noqa: BLE001 (not a local zarr store)
        return None
    tmp = Path(tempfile.gettempdir()).resolve()
    for parent in path.resolve().parents:
        if parent.parent == tmp:
            return parent if parent.name.startswith("napari-bioimg-") else None
    return None


class ResultLayers:
    """Writes runs' results into our own layers and removes the temporary stores of lazy results."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.stores: dict[int, Path] = {}
        """Temporary result stores by the key of the layer that shows them."""
        viewer.layers.events.removed.connect(self._on_removed)

    # ---------------------------------------------------------------- adding layers
    def _added(self, run, layer):
        """A result is being written to ``layer``: it is the run's result; read-only while training runs."""
        if layer is None:
            return None
        key = L.layer_key(layer)
        run.result_key = key
        if run.placeholder == key:  # the layer added at the start holds a result now: it stays
            run.placeholder = None
        if run.job is Job.TRAIN and layer.editable:
            layer.editable = False  # napari makes a Labels layer editable again when its data is replaced
        return layer

    def _geometry(self, run, kind: str) -> tuple[tuple[int, ...], type]:
        """Shape and dtype of the result layer for the run's image."""
        axes = run.axes
        kept = axes if kind == "image" else axes.replace("C", "")
        shape = tuple(s for a, s in zip(axes, run.sample.shape) if a in kept)
        # uint16 labels go straight to the GPU; napari maps uint32 on the CPU (slower previews)
        return shape, (np.uint16 if kind == "labels" else np.float32)

    def _source(self, run):
        return L.find_layer(self.viewer, run.sample.image_key)

    def _layer(self, run, kind: str, shape, dtype):
        """Our result layer for ``run`` (added if needed, which napari selects: the user's selection is restored)."""
        source = self._source(run)
        if source is None:
            return None
        active = L.active_key(self.viewer)
        layer = L.result_layer(self.viewer, source, run.result_name, kind, shape, dtype, run.axes)
        keep = run.select if L.find_layer(self.viewer, run.select) is not None else active
        if keep is not None:
            L.select(self.viewer, keep)
        return layer

    def add_placeholder(self, run) -> None:
        """The (empty) layer previews and the final result will be written to, added as training starts."""
        if run.objects is not None:
            layer = self._layer(run, "labels", tuple(run.objects.shape), np.uint32)
        else:
            shape, dtype = self._geometry(run, run.output_kind)
            layer = self._layer(run, run.output_kind, shape, dtype)
        if self._added(run, layer) is not None:
            run.placeholder = L.layer_key(layer)

    def drop_placeholder(self, run) -> None:
        """Remove the layer added at the start if nothing was ever shown in it (error, stop before a preview)."""
        layer = L.find_layer(self.viewer, run.placeholder)
        run.placeholder = None
        if layer is not None:
            self.viewer.layers.remove(layer)

    def mark_preview(self, run):
        """The layer a training's previews went to, renamed for what it holds: ``... (preview, step N)``."""
        layer = L.find_layer(self.viewer, run.result_key)
        if layer is None or not L.is_ours(layer) or run.preview is None:
            return None
        layer.name = f"{layer.name} (preview, step {run.preview.step})"
        layer.metadata["preview_step"] = run.preview.step
        return layer

    def drop_previews(self, run) -> None:
        """A training that failed: the layer its previews went to holds no result, so it goes."""
        layer = L.find_layer(self.viewer, run.result_key)
        run.result_key = None
        if layer is not None and L.is_ours(layer):
            self.viewer.layers.remove(layer)

    def finish(self, run) -> None:
        """The run is over: its result layer is editable again (the user's to correct now)."""
        layer = L.find_layer(self.viewer, run.result_key)
        if layer is not None and not layer.editable:
            layer.editable = True

    # ---------------------------------------------------------------- previews and results
    def preview(self, run, ev) -> None:
        if run.objects is not None:
            self._object_classes_preview(run, ev.data, ev.index)
        else:
            self.show(run, ev.data, ev.index, ev.kind)

    def show(self, run, data: np.ndarray, index: tuple[int, ...] | None = None, kind: str | None = None):
        """Write a preview (one frame at ``index``) or a full result into our own result layer."""
        kind = kind or run.output_kind
        source = self._source(run)
        if source is None:
            return None
        kept = run.axes if kind == "image" else run.axes.replace("C", "")
        full_shape, dtype = self._geometry(run, kind)
        if kind == "image" and data.ndim == len(full_shape) + 1 and index is None:
            full_shape = data.shape
        if kind == "labels" and data.size and int(data.max()) >= 2**16:
            dtype = np.uint32
        layer = self._layer(run, kind, full_shape, dtype)
        current = layer.data
        if not index and isinstance(current, np.ndarray) and current.shape == data.shape \
                and _fits_in(data, current.dtype):
            current[...] = data  # in place: half the GUI-thread time of replacing the layer's data
            layer.refresh()
        elif not index:
            layer.data = data.astype(dtype, copy=False)
        else:
            target = np.asarray(layer.data)
            if kind == "labels" and np.iinfo(target.dtype).max < int(data.max()):
                target = target.astype(np.uint32)
                layer.data = target
            spatial = "ZYX" if run.spatial_dims == 3 else "YX"
            it = iter(index)
            sel = tuple(slice(None) if a in spatial or a == "C" else next(it) for a in kept)
            target[sel] = data
            layer.refresh()
        if kind == "image":
            L.match_contrast(layer, source)
        return self._added(run, layer)

    def show_region(self, run, data: np.ndarray, box: tuple[slice, ...]):
        """Live preview: write ``data`` into ``box`` (over the image's axes without C) of our result layer."""
        shape, dtype = self._geometry(run, "labels")
        layer = self._layer(run, "labels", shape, dtype)
        if layer is None:
            return None
        target = np.asarray(layer.data)
        if data.size and np.iinfo(target.dtype).max < int(data.max()):
            target = target.astype(np.uint32)
            layer.data = target
        target[box] = data.reshape(target[box].shape)
        layer.refresh()
        return self._added(run, layer)

    def objects_preview(self, run, class_image: np.ndarray, index: tuple[int, ...]) -> None:
        """Live preview of a classification: the objects coloured by their current class."""
        self._object_classes_preview(run, class_image, index)

    def show_lazy(self, run, array):
        """A result written block by block into a zarr store: shown lazily; a temporary store is ours to remove."""
        source = self._source(run)
        if source is None:
            self._remove_store(temporary_store(array))
            return None
        layer = L.add_lazy_result(self.viewer, source, run.result_name, run.output_kind, array, run.axes)
        axes = run.axes if run.output_kind == "image" else run.axes.replace("C", "")
        layer.metadata["axes"] = axes if len(axes) == array.ndim else ("C" + axes)[-array.ndim:]
        store = temporary_store(array)
        if store is not None:
            self.stores[L.layer_key(layer)] = store
        return self._added(run, layer)

    def _class_layer(self, run):
        return self._added(run, self._layer(run, "labels", tuple(run.objects.shape), np.uint32))

    def _object_classes_preview(self, run, class_image: np.ndarray, index: tuple[int, ...]) -> None:
        """Live preview: the objects of one frame (or the volume), coloured by their current class."""
        layer = self._class_layer(run)
        if layer is None:
            return
        objects = run.objects
        spatial = "ZYX" if run.spatial_dims == 3 else "YX"
        it = iter(index or ())
        sel = tuple(slice(None) if a in spatial else next(it) for a in run.axes.replace("C", ""))
        ids, values = C.object_classes(objects[sel], class_image)
        run.colors.update(zip(ids.tolist(), values.tolist()))
        data = np.asarray(layer.data)
        data[sel] = objects[sel]
        C.paint_result(layer, data, list(run.colors), [v - 1 for v in run.colors.values()])
        self._added(run, layer)

    def show_classes(self, run, result):
        """Every object (or frame) coloured by its predicted class; class and probability in the features."""
        if run.objects is None:  # image classification: one class value per frame
            return self.show(run, result.class_image, None, "labels")
        layer = self._class_layer(run)
        if layer is not None:
            values = [result.class_values[k] for k in result.index]
            C.paint_result(layer, run.objects, result.ids, [v - 1 for v in values], C.prediction_features(result))
            self._added(run, layer)
        return layer

    # ---------------------------------------------------------------- stores of lazy results
    def store_of(self, layer) -> Path | None:
        return self.stores.get(L.layer_key(layer)) if layer is not None else None

    def adopt_saved(self, source, saved: Path) -> None:
        """A temporary result was saved to ``saved``: the layer now reads the saved copy; the temporary one goes."""
        from ..core.data.zarrio import open_output

        store = temporary_store(source)
        for key, path in list(self.stores.items()):
            if path == store:
                layer = L.find_layer(self.viewer, key)
                if layer is not None:
                    layer.data = open_output(saved)
                    layer.metadata["store"] = str(saved)
                self._remove_store(self.stores.pop(key))

    def _on_removed(self, event) -> None:
        key = L.layer_key(event.value)
        if key in self.stores:
            self._remove_store(self.stores.pop(key))

    @staticmethod
    def _remove_store(path: Path | None) -> None:
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)

    def close(self, window_closed: bool = True) -> None:
        """The widget closes: temporary stores go now, or (a layer still shows one) when Python exits."""
        try:
            self.viewer.layers.events.removed.disconnect(self._on_removed)
        except (TypeError, ValueError, RuntimeError):
            pass
        for key, path in self.stores.items():
            if window_closed or L.find_layer(self.viewer, key) is None:
                self._remove_store(path)
            else:
                atexit.register(self._remove_store, path)
        self.stores.clear()
