"""The dock around the widget: the engine loads off the GUI thread; napari's dock title fits.

Importing the engine (PyTorch, the tasks and models) takes 2 s or more, which froze the
whole window each time the dock opened from the Plugins menu. Now it is imported by one
background thread per process (:func:`load_engine`), which then warms torch up; the dock
shows "Loading…" meanwhile and builds its parts on the GUI thread once the import is done
(a few tens of milliseconds). Code that asks for a part sooner waits for the import.
"""

from __future__ import annotations

import threading

from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QLabel, QSizePolicy, QVBoxLayout, QWidget

_loaded = threading.Event()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def _load() -> None:
    try:
        import napari_bioimg.core  # noqa: F401 (torch, tasks, models: what the form lists)
        import napari_bioimg.core.config  # noqa: F401
        import napari_bioimg.core.runtime.device  # noqa: F401
    except Exception:  # noqa: BLE001 (the GUI thread imports again and shows the error)
        pass
    finally:
        _loaded.set()
    # torch's one-time start-up (its compiler stack, first kernels) now, rather than in the first seconds of
    # training, where it would stall the viewer
    from ..core.runtime.fast import warm_up

    warm_up()


def load_engine() -> threading.Event:
    """Start importing the engine in the background (once per process); the event is set when it is imported."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_load, name="napari-bioimg-engine", daemon=True)
            _thread.start()
    return _loaded


def fit_dock_title(widget, minimum: int) -> None:
    """Make ``widget`` wide enough for napari's dock title ("Deep learning (train / predict) (napari-bioimg)")."""
    dock = widget.parent()
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parent()
    title = getattr(dock.titleBarWidget(), "title", None) if dock is not None else None
    if title is not None:
        needed = title.fontMetrics().horizontalAdvance(title.text()) + 90  # + the bar's three buttons
        widget.setMinimumWidth(min(max(needed, minimum), 480))


class EngineDock(QWidget):
    """A dock widget whose parts need the engine: "Loading…" until it is imported, then :meth:`build`.

    A subclass sets what it needs, then calls :meth:`start`; :meth:`build` makes its parts and
    passes the finished content to :meth:`show_content`. Asking for a part before it exists
    (a script or test right after opening the dock) waits for the import and builds at once.
    """

    def __init__(self):
        super().__init__()
        self.ready = False
        """Whether the parts are built."""
        self._building = self._closed = False
        self._content = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self._loading = QLabel("Loading the deep-learning engine (PyTorch)…")
        # expanding, like the scroll area that replaces it: napari adds no stretch above the content
        self._loading.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self._loading.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        outer.addWidget(self._loading)
        self._engine = load_engine()
        self._poll = QTimer(self)
        self._poll.setInterval(25)
        self._poll.timeout.connect(lambda: self._engine.is_set() and self._build())

    def start(self) -> None:
        if self._engine.is_set():
            self._build()
        else:
            self._poll.start()

    PARTS: tuple[str, ...] = ()
    """The attributes :meth:`build` makes (asking for one of them first waits for the engine and builds)."""

    def __getattr__(self, name: str):
        d = self.__dict__
        if name not in self.PARTS or d.get("ready", True) or d.get("_building") or d.get("_closed"):
            raise AttributeError(name)
        self._engine.wait()
        self._build()
        return getattr(self, name)

    def _build(self) -> None:
        if self.ready or self._building or self._closed:
            return
        self._building = True
        self._poll.stop()
        try:
            self.build()
            self.ready = True
        finally:
            self._building = False

    def build(self) -> None:
        raise NotImplementedError

    def show_content(self, content: QWidget) -> None:
        """Replace "Loading…" with the built ``content``."""
        self.layout().removeWidget(self._loading)
        self._loading.deleteLater()
        self.layout().addWidget(content)
        self._content = content
        fit_dock_title(self, content.minimumWidth())

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        if self.__dict__.get("_content") is not None:
            fit_dock_title(self, self._content.minimumWidth())

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ParentChange and self.__dict__.get("_content") is not None:
            fit_dock_title(self, self._content.minimumWidth())
        return super().event(event)

    def cancel(self) -> None:
        """Closed before it was built: never build."""
        self._closed = True
        self._poll.stop()
