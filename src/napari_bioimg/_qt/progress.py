"""Progress in the dock widget and in napari's activity dock, and keeping Python's garbage collector out of the way.

Measured with napari's OpenGL canvas in the window: a ``QProgressBar`` in the
dock repaints synchronously on every ``setValue`` (8-11 ms of GUI-thread time
per training step), so the widget's own bar is painted here and only schedules
repaints. napari's activity-dock bar is cheap to update while the dock is
collapsed (0.2 ms) but its first creation costs ~55 ms (later ones ~15 ms), so
one is created and closed when the widget opens, not when Train is pressed.
"""

from __future__ import annotations

import gc

from magicgui.widgets import Label
from psygnal import Signal
from qtpy.QtCore import QRectF, Qt
from qtpy.QtGui import QColor, QPainter
from qtpy.QtWidgets import QSizePolicy, QWidget

from . import notices
from .prose import fmt_time


class StatusLine:
    """The widget's one line of what is going on; errors and warnings also go to napari's notifications."""

    changed = Signal(str)

    def __init__(self):
        self.prefix = ""
        """Kept in front of what is shown next (e.g. the training's summary before its prediction's result)."""
        self.label = Label(value="")
        self.label.native.setWordWrap(True)
        self.label.native.setMinimumHeight(40)
        self.label.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    @property
    def value(self) -> str:
        return self.label.value

    @value.setter
    def value(self, text: str) -> None:
        text = f"{self.prefix}\n{text}" if self.prefix else text
        self.label.value = text
        self.changed.emit(text)

    def tell(self, level: str, message: str, notify: bool | None = None) -> None:
        """Show ``message`` as :data:`.notices.POLICY` says for ``level`` (``notify`` overrides the pop-up)."""
        self.value = notices.on_status_line(level, message)
        notices.pop_up(level, message, notify)

    def error(self, message: str) -> None:
        self.tell("error", message)

    def warn(self, message: str) -> None:
        self.tell("warning", message)

    def info(self, message: str, notify: bool = False) -> None:
        self.tell("info", message, notify)

TRACK = QColor("#3b3f46")
BAR = QColor("#5a8fd8")
TEXT = QColor("#f0f0f0")


class DockProgress(QWidget):
    """Percent progress with a short description, hidden while idle; mirrored in napari's activity dock.

    Painted here rather than with ``QProgressBar`` (see the module docstring):
    ``update()`` only schedules a repaint, which Qt merges with the viewer's own.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.fraction = 0.0
        self.text = ""
        self.clock = ""
        self.setFixedHeight(18)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._activity = None  # napari's activity-dock progress of the current run
        self.hide()

    @staticmethod
    def warm_up() -> None:
        """Pay the one-time cost of napari's activity-dock progress bars now (when the widget opens)."""
        from napari.utils import progress

        progress(total=1, desc="napari-bioimg").close()

    def begin(self, desc: str) -> None:
        from napari.utils import progress

        self.text = desc
        self.fraction = 0.0
        self.clock = ""
        self.show()
        self.update()
        self.close_activity()
        self._activity = progress(total=100, desc=f"napari-bioimg: {desc.lower()}")

    def set_fraction(self, fraction: float) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        if int(fraction * 100) != int(self.fraction * 100):  # at most 100 repaints per run
            self.fraction = fraction
            self.update()
            if self._activity is not None:
                self._activity.n = self.value()
                self._activity.refresh()

    def set_clock(self, seconds: float) -> None:
        """A run without a budget (live training): the bar shows the time trained instead of percent done."""
        clock = f"{fmt_time(seconds)} (until Stop)"
        if clock != self.clock:  # at most once a second
            self.clock = clock
            self.update()

    def close_activity(self) -> None:
        if self._activity is not None:
            self._activity.close()
            self._activity = None

    def value(self) -> int:
        """Percent done."""
        return int(self.fraction * 100)

    def end(self) -> None:
        self.hide()
        self.close_activity()

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
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, f"{self.text}: {self.clock or f'{self.value()}%'}")
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
