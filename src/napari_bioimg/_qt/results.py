"""Predictions and result layers of the dock widget (a mixin of :class:`~._widget.BioimgWidget`).

Runs the engine's ``predict`` in a napari worker and writes what comes back into
our own result layers on the main thread: a new layer per image and model, never
one of the user's layers.
"""

from __future__ import annotations

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_warning

from . import classes as C
from . import layers as L


def _fits_in(data: np.ndarray, dtype) -> bool:
    """Whether ``data`` can be written into an array of ``dtype`` without changing any value's meaning."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return data.dtype.kind in "fiub"
    if dtype.kind in "iu" and data.dtype.kind in "iub":
        info = np.iinfo(dtype)
        return not data.size or (info.min <= int(data.min()) and int(data.max()) <= info.max)
    return False


def _predict_and_score(checkpoint, image, axes, reference=None, **kwargs):
    """Prediction generator that also scores an image result against a clean ``reference``.

    Returns ``(result, scores)``; ``scores`` holds PSNR/SSIM of the result and of the
    input against the reference (``None`` without a reference or when stopped).
    """
    from ..core.inference.predict import predict
    from ..core.metrics import image_scores

    result = yield from predict(checkpoint, image, axes, **kwargs)
    if result is None or reference is None:
        return result, None
    axes_ref = axes if axes and not axes.startswith("Z") else None  # SSIM frame by frame only along T/S
    scores = image_scores(result, reference, axes_ref)
    before = image_scores(np.asarray(image, dtype=np.float32), reference, axes_ref)
    return result, {**scores, "input_psnr": before["psnr"], "input_ssim": before["ssim"]}


class ResultsMixin:
    """Prediction and result layers; expects the attributes :class:`~._widget.BioimgWidget` sets up."""

    # ---------------------------------------------------------------- the layer added at Train
    def _drop_placeholder(self) -> None:
        """Remove the result layer added at Train if nothing was ever shown in it (error, stop, cancel)."""
        placeholder = L.find_layer(self.viewer, self._run.pop("placeholder", None))
        if placeholder is not None:
            self.viewer.layers.remove(placeholder)

    def _result_geometry(self, kind: str) -> tuple[tuple[int, ...], type]:
        """Shape and dtype of the result layer for the current run's image."""
        axes = self._run["axes"]
        source_shape = L.layer_data(self._run["image"]).shape
        # image results keep the source's shape (channel axis included); labels drop C
        kept = axes if kind == "image" else axes.replace("C", "")
        shape = tuple(s for a, s in zip(axes, source_shape) if a in kept)
        # uint16 labels go straight to the GPU; napari maps uint32 on the CPU (slower previews)
        return shape, (np.uint16 if kind == "labels" else np.float32)

    def _placeholder_layer(self, kind: str):
        """The (empty) layer previews and the final result will be written to, added before training starts."""
        if self._run.get("objects") is not None:
            return self._class_layer()  # (no placeholder is registered yet, so this does not claim it)
        shape, dtype = self._result_geometry(kind)
        image = self._run["image"]
        return L.result_layer(self.viewer, image, self._result_name(), kind, shape, dtype, self._run["axes"])

    # ---------------------------------------------------------------- prediction
    def start_prediction(self, value=None) -> None:
        """Predict the selected image with the current (trained or loaded) model into a new layer."""
        from ..core import Control, get_task

        if self.busy or self._checkpoint is None:
            return
        image = self.image.value
        if image is None:
            show_error("napari-bioimg: pick an image layer to predict")
            return
        data = self._checkpoint["data"]
        axes = self.axes.value
        if data["spatial_dims"] == 2 and "Z" in axes and image.ndim == 3 and not image.rgb:
            axes = "ZYX"
        task = self._loaded.task if self._loaded is not None else get_task(self._checkpoint["task"]["name"])
        objects = None
        if "objects" in task.inputs:
            if self.annotations.value is None:
                show_error("napari-bioimg: pick the objects to classify (a Labels layer)")
                return
            objects = L.snapshot(self.annotations.value)
        reference = self.reference.value if task.output_kind == "image" else None
        if reference is not None and L.data_shape(reference) != L.data_shape(image):
            show_warning(f"napari-bioimg: reference '{reference.name}' has another shape than the image; "
                         "no PSNR/SSIM this time")
            reference = None
        self._control = Control()
        self._run.update({"image": image, "axes": axes, "model": self._checkpoint["model"]["name"],
                          "spatial_dims": data["spatial_dims"], "objects": objects, "colors": {},
                          "kind": task.output_kind,
                          "label": getattr(task, "result_label", "") or self._checkpoint["model"]["name"],
                          "reference": reference.name if reference is not None else None})
        self.progress.begin("Predicting")
        direct = {"labels": objects, "class_image": objects is None} if task.direct_model else {}
        ref_data = L.snapshot(reference) if reference is not None else None
        # the layer's own (possibly lazy: dask, zarr) data: big images are predicted block by block
        worker = create_worker(_predict_and_score, self._loaded or self._checkpoint, L.layer_data(image), axes,
                               ref_data, device=self.device.value, **direct,
                               control=self._control, rgb=image.rgb, _start_thread=False,
                               _connect={"yielded": self._on_event, "returned": self._on_predicted,
                                         "errored": self._on_error, "finished": self._on_predict_finished})
        self._predict_worker = worker
        self._set_running(True)
        self._gc.hold()
        worker.start()

    def _on_predicted(self, returned) -> None:
        from ..core.data.zarrio import store_location
        from ..core.tasks import ClassPrediction

        result, scores = returned
        if result is None:
            self.status.value = "Prediction cancelled."
            return
        if isinstance(result, ClassPrediction):
            self._show_prediction_classes(result)
            return
        kind = self._output_kind()
        if not isinstance(result, np.ndarray):  # a zarr store written block by block: shown lazily
            image = self._run.get("image")
            if not L.in_viewer(self.viewer, image):
                return
            layer = L.add_lazy_result(self.viewer, image, self._result_name(), kind, result, self._run["axes"])
            self.status.value = f"Prediction in layer '{layer.name}' (shown from {store_location(result)})."
            return
        layer = self._show_result(result, None, kind)
        if layer is not None:
            n = int(result.max()) if kind == "labels" and result.size else None
            extra = f": {n} objects" if n is not None and self._checkpoint["task"]["name"] == "instance" else ""
            if scores:
                self._run["scores"] = scores
                extra = (f": PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.3f} against "
                         f"'{self._run['reference']}' (input: {scores['input_psnr']:.2f} dB, "
                         f"{scores['input_ssim']:.3f})")
            self.status.value = f"Prediction in layer '{layer.name}'{extra}."

    def _on_predict_finished(self) -> None:
        self._predict_worker = None
        self._drop_placeholder()
        self._run_ended()
        self._set_running(False)

    def _output_kind(self) -> str:
        from ..core import get_task

        if self._loaded is not None:
            return self._loaded.task.output_kind
        return get_task(self._checkpoint["task"]["name"]).output_kind

    def _result_name(self) -> str:
        return f"{self._run['image'].name} [{self._run.get('label') or self._run['model']}]"

    def _show_result(self, data: np.ndarray, index: tuple[int, ...] | None, kind: str):
        """Write a preview (one frame at ``index``) or a full result into our own result layer."""
        image = self._run.get("image")
        if not L.in_viewer(self.viewer, image):
            return None
        axes = self._run["axes"]
        kept = axes if kind == "image" else axes.replace("C", "")
        full_shape, dtype = self._result_geometry(kind)
        if kind == "image" and data.ndim == len(full_shape) + 1 and index is None:
            full_shape = data.shape
        if kind == "labels" and data.size and int(data.max()) >= 2**16:
            dtype = np.uint32
        layer = L.result_layer(self.viewer, image, self._result_name(), kind, full_shape, dtype, axes)
        self._claim(layer)
        current = layer.data
        if (index is None or not index) and isinstance(current, np.ndarray) and current.shape == data.shape \
                and _fits_in(data, current.dtype):
            current[...] = data  # in place: half the GUI-thread time of replacing the layer's data
            layer.refresh()
        elif index is None or not index:
            layer.data = data.astype(dtype, copy=False)
        else:
            target = np.asarray(layer.data)
            if kind == "labels" and np.iinfo(target.dtype).max < int(data.max()):
                target = target.astype(np.uint32)
                layer.data = target
            spatial = "ZYX" if self._run["spatial_dims"] == 3 else "YX"
            sel = []
            it = iter(index)
            for a in kept:
                sel.append(slice(None) if a in spatial or a == "C" else next(it))
            target[tuple(sel)] = data
            layer.refresh()
        if kind == "image":
            L.match_contrast(layer, image)
        return layer

    def _class_layer(self):
        image = self._run.get("image")
        if not L.in_viewer(self.viewer, image):
            return None
        shape = self._run["objects"].shape
        return self._claim(L.result_layer(self.viewer, image, self._result_name(), "labels", shape, np.uint32,
                                          self._run["axes"]))

    def _claim(self, layer):
        """A result is being written to ``layer``: if it is the placeholder added at Train, keep it.

        By key, not ``is``: through the proxied viewer a plugin gets, every access to a layer
        returns a new proxy object.
        """
        if layer is not None and self._run.get("placeholder") == L.layer_key(layer):
            self._run.pop("placeholder")
        return layer

    def _show_object_classes(self, class_image: np.ndarray, index: tuple[int, ...]) -> None:
        """Live preview: the objects of one frame (or the volume), coloured by their current class."""
        layer = self._class_layer()
        if layer is None:
            return
        objects = self._run["objects"]
        spatial = "ZYX" if self._run["spatial_dims"] == 3 else "YX"
        it = iter(index or ())
        sel = tuple(slice(None) if a in spatial else next(it) for a in self._run["axes"].replace("C", ""))
        ids, values = C.object_classes(objects[sel], class_image)
        self._run["colors"].update(zip(ids.tolist(), values.tolist()))
        data = np.asarray(layer.data)
        data[sel] = objects[sel]
        colors = self._run["colors"]
        C.paint_result(layer, data, list(colors), [v - 1 for v in colors.values()])

    def _show_prediction_classes(self, result) -> None:
        """Every object coloured by its predicted class; class and probability in the layer's features."""
        counts = {str(c): int(n) for c, n in zip(result.class_names,
                                                 np.bincount(result.index, minlength=len(result.class_names)))}
        if self._run.get("objects") is None:  # image classification: one class value per frame
            layer = self._show_result(result.class_image, None, "labels")
            what = "frames"
        else:
            layer = self._class_layer()
            if layer is None:
                return
            values = [result.class_values[k] for k in result.index]
            C.paint_result(layer, self._run["objects"], result.ids, [v - 1 for v in values],
                           C.prediction_features(result))
            what = "objects"
        if layer is not None:
            self.status.value = f"Classified {len(result.ids)} {what} into layer '{layer.name}': {counts}"
