"""Ending the widget's background work when its window closes, quietly.

When napari's window closes, Qt deletes the dock widget's children (plots, progress
bar) before the widget itself says it is gone; a worker that yields one more event
would then call into deleted Qt objects. So the widget stops at the window's *close*
(before anything is deleted), and its worker slots are disconnected, not merely told
to stop.

A close the user starts (the window's close button) may still be cancelled in
napari's "close this window?" dialog; then the window stays visible. So for such a
(spontaneous) close the watch waits for the window to hide; a close from code
(``viewer.close()``), or of a window never shown, ends the work at once.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QEvent, QObject

WORKER_SIGNALS = ("yielded", "returned", "errored", "finished", "paused", "resumed", "started")


class CloseWatch(QObject):
    """Calls ``on_close(window_closed)`` once: when the window holding ``widget`` closes (``True``),
    or ``widget`` is destroyed (``False``)."""

    def __init__(self, widget, on_close: Callable[[], None]):
        super().__init__(widget)
        self._on_close = on_close
        self._window = None
        self._done = False
        self._closing = False
        widget.installEventFilter(self)
        widget.destroyed.connect(lambda *_: self._fire(window_closed=False))
        self._follow(widget)

    def _follow(self, widget) -> None:
        window = widget.window()
        if window is not widget and window is not self._window:
            if self._window is not None:
                self._window.removeEventFilter(self)
            self._window = window
            window.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        kind = event.type()
        if obj is self._window and kind == QEvent.Type.Close:
            if event.spontaneous() and obj.isVisible():
                self._closing = True  # the user may still cancel it: wait for the window to hide
            else:
                self._fire()
        elif obj is self._window and kind == QEvent.Type.Hide and self._closing and not event.spontaneous():
            self._fire()
        elif obj is self._window and kind == QEvent.Type.Show:
            self._closing = False
        elif obj is not self._window and kind in (QEvent.Type.ParentChange, QEvent.Type.Show):
            self._follow(obj)
        return False

    def _fire(self, window_closed: bool = True) -> None:
        if not self._done:
            self._done = True
            self._on_close(window_closed)


def detach(worker) -> None:
    """Disconnect every slot from a napari worker's public signals and ask it to quit at its next yield."""
    for name in WORKER_SIGNALS:
        signal = getattr(worker, name, None)
        if signal is None:
            continue
        try:
            signal.disconnect()
        except (TypeError, RuntimeError):  # nothing connected, or already gone
            pass
    if getattr(worker, "is_paused", False):
        worker.resume()  # a paused generator only sees the quit when it runs again
    worker.quit()
