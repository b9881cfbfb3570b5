"""The dock around the widget: the engine loads off the GUI thread; napari's dock title fits.

Importing the engine (PyTorch, the tasks and models, scipy and scikit-image behind them)
takes 2 s or more, which froze the whole window each time the dock opened from the Plugins
menu. Now every module the widget and its runs use is imported by one background thread per
process (:func:`load_engine`), which then warms torch up; the dock shows "Loading…"
meanwhile. Once the import is done the dock builds its parts on the GUI thread *in small
pieces*: :meth:`EngineDock.build` is a generator, and each piece (a part made, a part added
to the shown dock, which napari's style sheet then polishes) runs in its own turn of the
event loop, so the window keeps drawing between them. Code that asks for a part sooner
waits for the import and finishes the build at once.
"""

from __future__ import annotations

import threading

from qtpy.QtCore import QEvent, Qt, QTimer
from qtpy.QtWidgets import QDockWidget, QLabel, QSizePolicy, QVBoxLayout, QWidget

_loaded = threading.Event()
_lock = threading.Lock()
_thread: threading.Thread | None = None


ENGINE_MODULES = (
    "napari_bioimg.core.config", "napari_bioimg.core.runtime.device", "napari_bioimg.core.tasks",
    "napari_bioimg.core.models", "napari_bioimg.core.metrics", "napari_bioimg.core.data.dataset",
    "napari_bioimg.core.data.annotations", "napari_bioimg.core.data.collect", "napari_bioimg.core.training.loop",
    "napari_bioimg.core.live", "napari_bioimg.core.inference.predict", "napari_bioimg.core.formats.checkpoint",
    "napari_bioimg.core.formats.loading",
)
"""What the widget's parts and its first run import: the tasks pull in scipy and scikit-image (over a
second on 2 cores), training and prediction the rest. Imported here, none of it lands on the GUI thread."""


def _load() -> None:
    import importlib

    from ..core.runtime.preload import preload_torch

    try:
        preload_torch()  # torch's native libraries, with the GIL released (the window keeps drawing)
        for name in ENGINE_MODULES:
            importlib.import_module(name)
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
        self._steps = None  # the build under way, piece by piece
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
        self._poll.timeout.connect(lambda: self._engine.is_set() and self._build(stepwise=True))
        self._step = QTimer(self)  # the next piece of a stepwise build, after the events already queued
        self._step.setSingleShot(True)
        self._step.setInterval(0)
        self._step.timeout.connect(lambda: self._build(stepwise=True))

    def start(self) -> None:
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

    def _build(self, stepwise: bool = False) -> None:
        """Run the build: one piece (``stepwise``, then the next is scheduled) or all that is left."""
        if self.ready or self._building or self._closed:
            return
        self._building = True
        self._poll.stop()
        self._step.stop()
        try:
            if self._steps is None:
                self._steps = self.build()
            for _ in self._steps:
                if stepwise:
                    self._step.start()
                    return
            self.ready = True
        finally:
            self._building = False

    def build(self):
        """Make the parts, as a generator: each ``yield`` hands the event loop a turn."""
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
