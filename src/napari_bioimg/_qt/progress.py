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
from napari.utils.notifications import show_error, show_info, show_warning
from psygnal import Signal
from qtpy.QtCore import QRectF, Qt
from qtpy.QtGui import QColor, QPainter
from qtpy.QtWidgets import QSizePolicy, QWidget

NBSP = "\u00a0"

SMALL_VALIDATION = {"pixels": 50_000, "objects": 30, "frames": 10}
"""Below these validation-set sizes the scores get a caveat: a handful of objects makes any score noisy."""


SELF_SUPERVISED = ("denoise", "reconstruct", "restore")
"""Tasks that learn from the image itself (or a target image): nothing to annotate."""


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def part(*words) -> str:
    """One part of a status line: its words never wrap apart (only the " · " between parts does)."""
    return NBSP.join(str(w) for w in words if w != "")


def line(*parts: str) -> str:
    return " · ".join(p for p in parts if p)


def fmt_count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e4 else f"{n:,}"


def validation_size(run) -> tuple[int, str] | None:
    """How many pixels / objects / frames the run's validation scores rest on.

    Uses the validation event's own ``size`` (and ``unit``) when the engine gives them; else the
    classification report's ``n``; else the held-apart pixels announced when training started.
    """
    val, started = run.val, run.started
    n = getattr(val, "size", None)
    unit = getattr(val, "unit", None) if n is not None else None
    if n is None and val is not None and val.report:
        n, unit = val.report.get("n"), getattr(started, "unit", None)
    if n is None and started is not None:
        n, unit = started.n_val_pixels, getattr(started, "unit", None)
    unit = unit or "pixels"
    return (int(n), unit) if n is not None else None


def validation_note(run) -> tuple[str, str | None]:
    """``("validated on 9.8k pixels", caveat or None)`` for the run's validation set."""
    size = validation_size(run)
    if size is None:
        return "", None
    n, unit = size
    annotated = getattr(run, "task", None) not in SELF_SUPERVISED
    if n == 0:
        held = "no annotations were" if annotated else "nothing was"
        return "no validation set", f"{held} held apart: the scores say nothing; raise Validation %"
    text = f"on {fmt_count(n)} {unit if n != 1 else unit.rstrip('s')}"
    small = n < SMALL_VALIDATION.get(unit, 0)
    more = "annotate more, or raise Validation %" if annotated else "raise Validation %, or use a bigger image"
    caveat = f"too small a validation set to trust the scores: check the result by eye ({more})" if small else None
    return text, caveat


def training_line(run, clock: str | None = None) -> str:
    """The status line while training: the latest score (and on how much), step, loss, speed, ETA (or the
    live session's ``clock``), preview."""
    ev, val = run.last, run.val
    parts = [part(k.replace("_", " "), f"{v:.3g}") for k, v in list(val.metrics.items())[:1]] if val else []
    size, caveat = validation_note(run)
    if parts and size:
        parts[-1] += NBSP + part(f"({size}{', few' if caveat else ''})")
    parts += [part("step", ev.step), part("loss", f"{ev.loss:.3g}"),
              part(f"{ev.steps_per_second:.1f}", "it/s"), clock or part("ETA", fmt_time(ev.eta))]
    text = line(*parts)
    return text + "\n" + preview_note(run) if run.preview is not None else text


def trained_summary(run, result) -> str:
    """What a training came to: steps, time, scores, on how much they rest and how far to trust them."""
    metrics = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in result.metrics.items() if k != "best_score")
    how = "stopped" if result.stopped_early else "finished"
    size, caveat = validation_note(run)
    text = f"Training {how}: {result.steps} steps in {result.seconds:.0f} s. {metrics}"
    if metrics and size:
        text += f" (validated {size})"
    return text + (f". Caution: {caveat}." if caveat and metrics else ".")


def preview_note(run) -> str:
    """What the preview layer shows: the model at a step of training (early ones look rough)."""
    ev, last = run.preview, run.last
    at = last.elapsed if last is not None and last.step == ev.step else None
    when = f"step {ev.step}" + (f", {fmt_time(at)} of training" if at is not None else "")
    early = ": an early model, it sharpens as training goes on" if last is None or \
        (last.fraction or 0) < 0.5 else ""
    return f"Preview: the model at {when}{early} (the final result replaces it)."


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

    def error(self, message: str) -> None:
        self.value = f"Error: {message}"
        show_error(f"napari-bioimg: {message}")

    def warn(self, message: str) -> None:
        self.value = message
        show_warning(f"napari-bioimg: {message}")

    def info(self, message: str, notify: bool = False) -> None:
        self.value = message
        if notify:
            show_info(f"napari-bioimg: {message}")

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
