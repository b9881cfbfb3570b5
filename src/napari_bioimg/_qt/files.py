"""Saving, loading and exporting models from the dock widget (a mixin of :class:`~._widget.BioimgWidget`)."""

from __future__ import annotations

from pathlib import Path

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QFileDialog

from . import layers as L


class FilesMixin:
    """Save / Load / Export; expects the attributes :class:`~._widget.BioimgWidget` sets up."""

    # ---------------------------------------------------------------- files
    def save_model(self, path: str | Path) -> Path:
        from ..core.formats.checkpoint import save_checkpoint

        if not self.trainable:
            raise RuntimeError("no napari-bioimg model to save: train or load one first (an imported bioimage.io "
                               "package is already a file)")
        path = Path(path)
        if path.suffix != ".pt":
            path = path.with_suffix(".pt")
        save_checkpoint(self._checkpoint, path)
        self.status.value = f"Saved model to {path}"
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
                loaded = load_bioimageio(path, self.device.value)
                ckpt = loaded.checkpoint
            else:
                ckpt = load_checkpoint(path)
        except BioimgError as err:
            show_error(f"napari-bioimg: {err}")
            self.status.value = f"Error: {err}"
            return
        foreign = loaded is not None and ckpt["task"]["name"] == "bioimageio"
        self._checkpoint, self._loaded = ckpt, (loaded if foreign else None)
        if not foreign:
            self.task.value = ckpt["task"]["name"]
            self.model.value = ckpt["model"]["name"]
        self._run["model"] = ckpt["model"]["name"]
        self.confusion.show_report(ckpt["task"].get("meta", {}).get("validation_report"))
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in ckpt.get("metrics", {}).items() if k != "best_score")
        what = (f"bioimage.io model {ckpt['bioimageio'].get('name')!r}: predicts {loaded.out_channels} "
                "channel(s) as an image" if foreign else f"{ckpt['model']['name']} for {ckpt['task']['name']}")
        self.status.value = f"Loaded {Path(path).name}: {what}. {metrics}"
        self._set_running(False)

    def export_model(self, path: str | Path, fmt: str | None = None) -> None:
        """Export the current model in the background: bioimage.io (.zip), TorchScript or ONNX (.onnx).

        The current image layer provides the sample for tracing, the test tensors and
        the cover (the bundled nuclei when no image is picked).
        """
        from ..core.formats.export import export_model

        if self.busy or not self.trainable:
            return
        path = Path(path)
        fmt = fmt or {".zip": "bioimageio", ".onnx": "onnx"}.get(path.suffix.lower(), "torchscript")
        image = self.image.value
        sample = L.layer_data(image) if image is not None and not image.rgb else None  # read in the worker
        axes = self.axes.value if sample is not None else None
        self.status.value = f"Exporting ({fmt}) to {path.name}…"
        worker = create_worker(export_model, self._checkpoint, fmt, path, sample=sample, sample_axes=axes,
                               _start_thread=False,
                               _connect={"returned": self._on_exported, "errored": self._on_error,
                                         "finished": self._on_export_finished})
        self._export_worker = worker
        self._set_running(True)
        worker.start()

    def _on_exported(self, path) -> None:
        self.status.value = f"Exported to {path}"
        show_info(f"napari-bioimg: exported to {path}")

    def _on_export_finished(self) -> None:
        self._export_worker = None
        self._set_running(False)

    def _save_dialog(self, value=None) -> None:
        path, _ = QFileDialog.getSaveFileName(self.native, "Save model", "model.pt", "napari-bioimg model (*.pt)")
        if path:
            self.save_model(path)

    def _load_dialog(self, value=None) -> None:
        path, _ = QFileDialog.getOpenFileName(self.native, "Load model", "", "Models (*.pt *.zip *.yaml);;"
                                              "napari-bioimg model (*.pt);;bioimage.io package (*.zip *.yaml)")
        if path:
            self.load_model(path)

    EXPORT_FILTERS = {"bioimage.io package (*.zip)": ("bioimageio", ".zip"),
                      "TorchScript (*.pt)": ("torchscript", ".pt"), "ONNX (*.onnx)": ("onnx", ".onnx")}

    def _export_dialog(self, value=None) -> None:
        path, chosen = QFileDialog.getSaveFileName(self.native, "Export model", "model.zip",
                                                   ";;".join(self.EXPORT_FILTERS))
        if path:
            fmt, suffix = self.EXPORT_FILTERS.get(chosen, ("bioimageio", ".zip"))
            path = Path(path)
            self.export_model(path if path.suffix else path.with_suffix(suffix), fmt)
