"""The README's main job: train on the bundled nuclei, predict held-out slices, score, screenshot.

Run as ``napari-bioimg demo`` (``scripts/demo.sh`` adds set-up and a virtual display).
Outputs in the chosen folder: ``model.pt``, ``prediction.tif``, ``metrics.json`` and
``screenshot.png`` (the real napari window with the widget and the prediction).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..core.settings.defaults import TIME_LIMIT

TRAIN = slice(4, 19)  # in-focus slices used for training (2D, slice by slice)
TEST = slice(19, 34)  # held-apart slices scored against their ground truth


def run_demo(out: Path, time_limit: float = TIME_LIMIT, gui: bool = True, device: str = "auto") -> int:
    start = time.perf_counter()  # what the user waits for the model: from here to the written model.pt
    from .._sample_data import load_nuclei_3d
    from ..core import TrainConfig
    from ..core.control import drain
    from ..core.data.io import write_image
    from ..core.formats.checkpoint import save_checkpoint
    from ..core.inference.predict import predict
    from ..core.inference.source import PredictSource
    from ..core.metrics import matching_stack
    from ..core.training.loop import train
    from .progress import Progress

    out.mkdir(parents=True, exist_ok=True)
    image, labels = load_nuclei_3d()
    print(f"napari-bioimg demo: training a 2D U-Net for {time_limit:.0f} s on {TRAIN.stop - TRAIN.start} "
          f"slices of the bundled nuclei stack, scoring {TEST.stop - TEST.start} held-apart slices", file=sys.stderr)
    progress = Progress(False, "train")
    try:
        result = drain(train(image[TRAIN], labels[TRAIN], TrainConfig(time_limit=time_limit, device=device,
                                                                      preview_every=0),
                             axes="TYX", preview_index=None), progress)
    finally:
        progress.close()
    model_path = save_checkpoint(result.checkpoint, out / "model.pt")
    waited = time.perf_counter() - start
    t0 = time.perf_counter()
    progress = Progress(False, "predict")
    try:
        pred = drain(predict(result.checkpoint, PredictSource(image[TEST], "TYX"), device=device), progress)
    finally:
        progress.close()
    t_pred = time.perf_counter() - t0
    write_image(out / "prediction.tif", pred, axes="ZYX")
    m = matching_stack(list(labels[TEST]), list(pred))
    at = m["thresholds"]
    report = {"time_limit": time_limit, "train_steps": result.steps,
              "train_seconds": round(waited, 1),  # wall time, start to written model: what the user waited
              "training_clock_seconds": round(result.seconds, 1),  # the engine's clock (what the limit counts)
              "predict_seconds": round(t_pred, 2), "n_true": m["n_true"], "n_pred": m["n_pred"],
              "f1@0.5": at["0.5"]["f1"], "precision@0.5": at["0.5"]["precision"],
              "recall@0.5": at["0.5"]["recall"], "f1@0.7": at["0.7"]["f1"], "f1@0.9": at["0.9"]["f1"],
              "mean_ap": float(np.mean([v["ap"] for v in at.values()]))}
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"wrote {model_path}, {out / 'prediction.tif'}, {out / 'metrics.json'}", file=sys.stderr)
    if gui:
        try:
            shot = screenshot(out / "screenshot.png", model_path, image[TEST], labels[TEST], result)
            print(f"wrote {shot}", file=sys.stderr)
        except Exception as err:  # no display or no Qt: the main job is done anyway
            print(f"napari-bioimg demo: screenshot skipped ({type(err).__name__}: {err})", file=sys.stderr)
    return 0


def screenshot(path: Path, model_path: Path, image: np.ndarray, labels: np.ndarray, result) -> Path:
    """Open napari with the widget, load the model, press Predict, wait, and save the window."""
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="napari-bioimg demo")
    viewer.window.resize(1500, 950)
    # the widget as a user opens it (Plugins menu): napari's plugin machinery makes it
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-bioimg", "Deep learning (train / predict)")
    layer = viewer.add_image(image, name="nuclei (held-out)", colormap="gray")
    viewer.add_labels(labels, name="ground truth", visible=False)
    widget.form.image.value = layer
    widget.form.axes.value = "TYX"
    widget.files.load_model(model_path)
    show_settings(widget.form, result.checkpoint["train_config"])
    for h in result.history:  # show the training curve of the run that made this model
        widget.plot.steps.append(h["step"])
        widget.plot.losses.append(h["loss"])
        score = next((v for k, v in h.items() if k.startswith("val_f1")), None)
        if score is not None:
            widget.plot.add_validation(h["step"], score, "F1@0.5")
    widget.plot.redraw(force=True)
    widget.predict_btn.native.click()
    app = QApplication.instance()
    deadline = time.perf_counter() + 300
    while widget.busy and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.02)
    viewer.dims.set_current_step(0, image.shape[0] // 2)
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    viewer.screenshot(str(path), canvas_only=False)
    viewer.close()
    return path


def show_settings(form, config: dict) -> None:
    """Put the settings the demo trained with in the widget's form, so the screenshot shows them (the time
    limit the run used, not the form's default)."""
    epochs = config.get("epochs") or 0
    form.epochs.value = epochs
    if not epochs and config.get("time_limit"):
        form.time_limit.value = max(1, round(config["time_limit"]))
    patch = config.get("patch_size")
    if patch:
        form.patch.value = patch[-1] if isinstance(patch, (list, tuple)) else patch
    model_config = config.get("model_config") or {}
    for field, value in (("batch", config.get("batch_size")), ("lr", config.get("learning_rate")),
                         ("depth", model_config.get("depth")), ("base_channels", model_config.get("base_channels"))):
        if value is not None:
            getattr(form, field).value = value
    form.val.value = round(100 * config.get("val_fraction", form.val.value / 100))
    form.preview.value = bool(config.get("preview_every"))
