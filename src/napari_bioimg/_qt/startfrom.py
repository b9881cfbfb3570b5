"""The *Start from* row: predict with, or fine-tune, a built-in model or a model file instead of starting blank.

Picking a built-in (``builtin:NAME``, those that fit the task) or a model file
loads it as the current model (as *Load* does): **Predict** works at once, with no
training, and **Train** fine-tunes it on the annotations instead of starting from
random weights. *nothing* makes Train start from random weights again.
"""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container

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
        self.row = Container(widgets=[self.combo], labels=True)
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

    def fine_tune(self) -> bool:
        """Whether Train should fine-tune the current model: it is the one picked here."""
        return self.combo.value != NOTHING and self._model is not None and self.session.model is self._model
