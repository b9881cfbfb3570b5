"""The *Start from* row: predict with, or fine-tune, a built-in model or a model file instead of starting blank.

Picking a built-in (``builtin:NAME``, those that fit the task) or a model file
loads it as the current model (as *Load* does): **Predict** works at once, with no
training, and **Train** fine-tunes it on the annotations instead of starting from
random weights. *nothing* makes Train start from random weights again. *Object diameter* (pixels; 0 = the model's own scale) makes
Predict zoom the image to the model's object size and the result back.
"""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, FloatSpinBox

NOTHING = "nothing"
MODEL_FILE = "a model file…"


class StartFrom:
    """A combo box under the form; ``files`` loads what is picked (:meth:`FileActions.load_model`)."""

    def __init__(self, form, files, session, status):
        self.form, self.files, self.session, self.status = form, files, session, status
        self.combo = ComboBox(label="Start from", choices=self._choices, value=NOTHING,
                              tooltip="nothing: train from random weights. A built-in model (made by the project "
                                      "from simulated images) or a model file: Predict with it at once, or Train "
                                      "to fine-tune it on your annotations")
        self.diameter = FloatSpinBox(label="Object diameter", value=0.0, min=0.0, max=10_000.0, step=1.0,
                                     tooltip="typical object diameter in pixels: Predict rescales the image to the "
                                             "model's object size and the result back; 0 = the model's own scale")
        self.diameter.native.setSpecialValueText("model's scale")  # 0 (unset) reads as what it means, not "0.00"
        self.row = Container(widgets=[self.combo, self.diameter], labels=True)
        self._model = None  # the session model this row loaded
        self.combo.changed.connect(self._on_pick)
        form.task.changed.connect(lambda *_: self.combo.reset_choices())

    def _choices(self, *_):
        from ..core.formats.builtins import for_task

        return [NOTHING, *for_task(self.form.task.value), MODEL_FILE]

    def _on_pick(self, value) -> None:
        if value == NOTHING or self.session.busy:
            return
        path = value
        if value == MODEL_FILE:
            from qtpy.QtWidgets import QFileDialog

            path, _ = QFileDialog.getOpenFileName(self.row.native, "Start from a model file", "",
                                                  "napari-bioimg models (*.pt);;All files (*)")
            if not path:
                return
        self.files.load_model(path)
        self._model = self.session.model

    def options(self) -> dict:
        """Prediction options this row sets (the object diameter when one is given)."""
        return {"diameter": float(self.diameter.value)} if self.diameter.value else {}

    def fine_tune(self) -> bool:
        """Whether Train should fine-tune the current model: it is the one picked here."""
        return self.combo.value != NOTHING and self._model is not None and self.session.model is self._model
