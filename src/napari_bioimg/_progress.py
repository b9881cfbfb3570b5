"""A progress bar inside the dock widget, and keeping Python's garbage collector out of the way of the viewer.

napari's activity-dock progress bars cost 60-70 ms of GUI-thread time when the
first one opens (the dock is shown and the event loop pumped), which the user
feels as a hitch on pressing Train; a bar painted in the widget costs well
under a millisecond per update.
"""

from __future__ import annotations

import gc

from qtpy.QtCore import QRectF, Qt
from qtpy.QtGui import QColor, QPainter
from qtpy.QtWidgets import QSizePolicy, QWidget

TRACK = QColor("#3b3f46")
BAR = QColor("#5a8fd8")
TEXT = QColor("#f0f0f0")


class DockProgress(QWidget):
    """Percent progress with a short description, hidden while idle.

    Painted here rather than with ``QProgressBar``, whose ``setValue`` repaints
    synchronously: with napari's OpenGL canvas in the same window that cost
    8-11 ms of GUI-thread time per training step. ``update()`` only schedules
    a repaint, which Qt merges with the viewer's own.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.fraction = 0.0
        self.text = ""
        self.setFixedHeight(18)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.hide()

    def begin(self, desc: str) -> None:
        self.text = desc
        self.fraction = 0.0
        self.show()
        self.update()

    def set_fraction(self, fraction: float) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        if int(fraction * 100) != int(self.fraction * 100):
            self.fraction = fraction
            self.update()

    def value(self) -> int:
        """Percent done."""
        return int(self.fraction * 100)

    def end(self) -> None:
        self.hide()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        try:
            r = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(TRACK)
            p.drawRoundedRect(r, 3, 3)
            if self.fraction > 0:
                p.setBrush(BAR)
                p.drawRoundedRect(QRectF(r.x(), r.y(), r.width() * self.fraction, r.height()), 3, 3)
            p.setPen(TEXT)
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, f"{self.text}: {self.value()}%")
        finally:
            p.end()


class QuietGC:
    """Freeze the objects that exist when a run starts so that full collections skip them.

    A full (generation 2) collection walks every tracked object; with napari
    loaded that is a few hundred thousand objects and takes 100-200 ms with the
    GIL held, which stalls the viewer whichever thread triggers it. While a
    run is in progress, :func:`gc.freeze` moves the objects alive at its start
    out of the collector's view, so collections only scan what was made since;
    :meth:`release` puts them back afterwards, so nothing stays uncollectable.
    """

    def __init__(self):
        self.active = False

    def hold(self) -> None:
        if not self.active:
            gc.freeze()
            self.active = True

    def release(self) -> None:
        if self.active:
            gc.unfreeze()
            self.active = False
