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

import weakref
from collections.abc import Callable

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QMainWindow

WORKER_SIGNALS = ("yielded", "returned", "errored", "finished", "paused", "resumed", "started")


class CloseWatch(QObject):
    """Calls ``on_close(window_closed)`` once: when the window holding ``widget`` closes (``True``),
    or ``widget`` is destroyed or taken out of the window it was docked in (``False``).

    napari builds the dock (widget -> dock -> main window) after the widget exists, so every
    ancestor is watched and a re-parenting anywhere along the chain finds the window again.
    Ancestors are held weakly: the widget must not keep a closed window (and its viewer) alive.
    """

    def __init__(self, widget, on_close: Callable[[bool], None]):
        super().__init__(widget)
        self._on_close = on_close
        self._widget = weakref.ref(widget)
        self._chain: list[weakref.ref] = []
        self._done = False
        self._closing = False
        self._docked = False
        widget.destroyed.connect(lambda *_: self._fire(window_closed=False))
        self._follow()

    def _window(self):
        return self._chain[-1]() if self._chain else None

    def _follow(self) -> None:
        """Watch the widget and each of its ancestors up to the top-level window."""
        for ref in self._chain:
            if ref() is not None:
                ref().removeEventFilter(self)
        self._chain = []
        node = self._widget()
        while node is not None:
            node.installEventFilter(self)
            self._chain.append(weakref.ref(node))
            node = node.parentWidget()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt's name)
        kind = event.type()
        window = self._window()
        if kind == QEvent.Type.ParentChange:
            self._follow()
            docked = isinstance(self._window(), QMainWindow)
            if self._docked and not docked:  # removed from the window (napari's remove_dock_widget)
                self._fire(window_closed=False)
            self._docked = docked
        elif obj is window and obj is not self._widget() and kind == QEvent.Type.Close:
            if event.spontaneous() and obj.isVisible():
                self._closing = True  # the user may still cancel it: wait for the window to hide
            else:
                self._fire()
        elif obj is window and kind == QEvent.Type.Hide and self._closing and not event.spontaneous():
            self._fire()
        elif obj is window and kind == QEvent.Type.Show:
            self._closing = False
        return False

    def _fire(self, window_closed: bool = True) -> None:
        if not self._done:
            self._done = True
            for ref in self._chain:  # let the closed window go
                try:
                    ref() is not None and ref().removeEventFilter(self)
                except RuntimeError:  # already deleted
                    pass
            self._chain = []
            self._on_close(window_closed)


def detach(worker) -> None:
    """Disconnect every slot from a napari worker's public signals and ask it to quit at its next yield."""
    try:
        for name in WORKER_SIGNALS:
            try:
                getattr(worker, name).disconnect()
            except (TypeError, RuntimeError, AttributeError):  # nothing connected, or already gone
                pass
        if worker.is_paused:
            worker.resume()  # a paused generator only sees the quit when it runs again
        worker.quit()
    except RuntimeError:  # the worker's Qt signals are gone (Python is exiting): its abort event ends it
        pass
