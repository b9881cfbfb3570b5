"""Files: save / load / export the model, and save a big result (kept in a temporary store) as OME-Zarr."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import Container, PushButton
from qtpy.QtWidgets import QFileDialog

from . import layers as L

EXPORT_FILTERS = {"bioimage.io package (*.zip)": ("bioimageio", ".zip"),
                  "TorchScript (*.pt)": ("torchscript", ".pt"), "ONNX (*.onnx)": ("onnx", ".onnx")}


class FileActions:
    """The file buttons; the work runs in the :class:`~.session.Session`'s workers."""

    def __init__(self, session, form, results, status, viewer, parent=None):
        self.session, self.form, self.results, self.status, self.viewer = session, form, results, status, viewer
        self.parent = parent  # of the file dialogs
        self.save_btn = PushButton(text="Save model…", enabled=False, tooltip="Save the model (.pt)")
        self.load_btn = PushButton(text="Load model…", tooltip="A napari-bioimg model (.pt) or a bioimage.io "
                                                               "package (.zip)")
        self.export_btn = PushButton(text="Export…", enabled=False,
                                     tooltip="bioimage.io package (.zip), TorchScript or ONNX, for other tools")
        self.save_result_btn = PushButton(text="Save result as OME-Zarr…", visible=False)
        self.row = Container(widgets=[self.save_btn, self.load_btn, self.export_btn], layout="horizontal",
                             labels=False)
        self.save_btn.changed.connect(self._save_dialog)
        self.load_btn.changed.connect(self._load_dialog)
        self.export_btn.changed.connect(self._export_dialog)
        self.save_result_btn.changed.connect(self._save_result_dialog)
        session.exported.connect(lambda path: status.info(f"Exported to {path}", notify=True))
        session.saved.connect(self._on_result_saved)

    def update(self) -> None:
        """Enable what makes sense now."""
        idle, trainable = not self.session.busy, self.session.trainable
        self.save_btn.enabled = self.export_btn.enabled = idle and trainable
        self.load_btn.enabled = idle
        store = self.unsaved_result()
        self.save_result_btn.visible = store is not None
        self.save_result_btn.enabled = idle
        if store is not None:
            self.save_result_btn.tooltip = (f"'{store.name}' lives in a temporary folder ({self.results.store_of(store)})"
                                            " that is removed when the layer or the window closes: save a copy")

    # ---------------------------------------------------------------- model files
    def save_model(self, path: str | Path) -> Path:
        from ..core.formats.checkpoint import save_checkpoint

        if not self.session.trainable:
            raise RuntimeError("no napari-bioimg model to save: train or load one first (an imported bioimage.io "
                               "package is already a file)")
        path = Path(path)
        if path.suffix != ".pt":
            path = path.with_suffix(".pt")
        save_checkpoint(self.session.model.checkpoint, path)
        self.status.info(f"Saved model to {path}")
        return path

    def load_model(self, path: str | Path) -> None:
        """Load a napari-bioimg model (.pt) or a bioimage.io package (.zip, folder or rdf.yaml)."""
        from ..core import BioimgError
        from ..core.formats.bioimageio.files import is_bioimageio_source
        from ..core.formats.checkpoint import load_checkpoint
        from ..core.formats.loading import load_bioimageio

        loaded = None
        try:
            if is_bioimageio_source(path):
                loaded = load_bioimageio(path, self.form.device.value)
                ckpt = loaded.checkpoint
            else:
                ckpt = load_checkpoint(path)
        except BioimgError as err:
            self.status.error(str(err))
            return
        model = self.session.set_model(ckpt, loaded)
        card = model.card
        if not card.foreign:
            self.form.task.value = card.task
            self.form.model.value = card.model
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in card.metrics.items() if k != "best_score")
        from .guidance import model_words

        self.status.info(f"Loaded {Path(path).name}: {model_words(card)}. {metrics}".strip())

    def export_model(self, path: str | Path, fmt: str | None = None) -> None:
        """Export the current model in the background: bioimage.io (.zip), TorchScript or ONNX (.onnx).

        The current image layer provides the sample for tracing, the test tensors and the cover.
        """
        if self.session.busy or not self.session.trainable:
            return
        path = Path(path)
        fmt = fmt or {".zip": "bioimageio", ".onnx": "onnx"}.get(path.suffix.lower(), "torchscript")
        image = self.form.image.value
        sample = L.layer_data(image) if image is not None and not image.rgb else None  # read in the worker
        self.status.info(f"Exporting ({fmt}) to {path.name}…")
        self.session.export(path, fmt, sample=sample, sample_axes=self.form.axes.value if sample is not None else None)

    # ---------------------------------------------------------------- big results
    def unsaved_result(self):
        """The result layer whose data lives in a temporary store: the selected one, else the newest."""
        active = self.viewer.layers.selection.active
        if active is not None and self.results.store_of(active) is not None:
            return active
        keys = list(self.results.stores)
        return L.find_layer(self.viewer, keys[-1]) if keys else None

    def save_result(self, path: str | Path, layer=None) -> None:
        """Copy a result kept in a temporary store to ``path`` (OME-Zarr) in the background."""
        layer = layer or self.unsaved_result()
        if layer is None or self.session.busy:
            return
        path = Path(path)
        if not path.name.lower().endswith(".ome.zarr"):
            path = path.with_name(path.name.removesuffix(".zarr") + ".ome.zarr")
        data = layer.data
        axes = layer.metadata.get("axes") or "TCZYX"[-data.ndim:]
        scale = [float(s) for s in layer.scale] if len(layer.scale) == data.ndim else None
        self.status.info(f"Saving '{layer.name}' to {path}…")
        self.session.save_store(data, path, axes, scale)

    def _on_result_saved(self, path, source) -> None:
        self.results.adopt_saved(source, path)
        self.status.info(f"Saved the result to {path} (the layer now shows that copy).", notify=True)
        self.update()

    # ---------------------------------------------------------------- dialogs
    def _save_dialog(self, value=None) -> None:
        path, _ = QFileDialog.getSaveFileName(self.parent, "Save model", "model.pt", "napari-bioimg model (*.pt)")
        if path:
            from ..core import BioimgError

            try:
                self.save_model(path)
            except BioimgError as err:
                self.status.error(f"{err}. The model is still here.")

    def _load_dialog(self, value=None) -> None:
        path, _ = QFileDialog.getOpenFileName(self.parent, "Load model", "", "Models (*.pt *.zip *.yaml);;"
                                              "napari-bioimg model (*.pt);;bioimage.io package (*.zip *.yaml)")
        if path:
            self.load_model(path)

    def _export_dialog(self, value=None) -> None:
        path, chosen = QFileDialog.getSaveFileName(self.parent, "Export model", "model.zip", ";;".join(EXPORT_FILTERS))
        if path:
            fmt, suffix = EXPORT_FILTERS.get(chosen, ("bioimageio", ".zip"))
            path = Path(path)
            self.export_model(path if path.suffix else path.with_suffix(suffix), fmt)

    def _save_result_dialog(self, value=None) -> None:
        layer = self.unsaved_result()
        if layer is None:
            return
        name = layer.name.replace("[", "").replace("]", "").replace(" ", "_") + ".ome.zarr"
        path, _ = QFileDialog.getSaveFileName(self.parent, "Save result as OME-Zarr", name, "OME-Zarr (*.ome.zarr)")
        if path:
            self.save_result(path, layer)
