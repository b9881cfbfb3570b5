"""A small live loss / validation plot for the dock widget, painted directly with Qt.

matplotlib redrew the whole figure (text layout, two axes) on the GUI thread for
every update: 100-400 ms per redraw on a busy laptop CPU, which froze the viewer
while training (see ``benchmarks/speed/bench_gui.py``). Painting a few polylines and
labels with ``QPainter`` costs about a millisecond, and only when Qt repaints.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

FG = QColor("#d0d0d0")
BG = QColor("#262930")  # napari's dark theme background
FRAME = QColor("#555555")
LOSS = QColor("#4fc3f7")
VAL = QColor("#ffb74d")


def _fmt(v: float) -> str:
    return f"{v:.3g}"


class LossPlot(QWidget):
    """Training loss (left axis) and a validation metric (right axis) against step.

    The right axis shows the metric the status line names (e.g. ``f1`` or ``blind_spot_loss``),
    not the engine's internal score (which is negated for losses); it spans 0..1 for metrics
    that live there and the values' own range otherwise. Margins fit their labels.

    Data live in plain lists (``steps``, ``losses``, ``val_steps``, ``val_scores``);
    adding a point only schedules a repaint, which Qt merges with others.
    """

    def __init__(self, min_interval: float = 0.0):
        super().__init__()
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.val_scores: list[float] = []
        self.val_name = "validation"
        self.setMinimumHeight(150)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def reset(self) -> None:
        self.steps.clear()
        self.losses.clear()
        self.val_steps.clear()
        self.val_scores.clear()
        self.redraw(force=True)

    def add_loss(self, step: int, loss: float) -> None:
        self.steps.append(step)
        self.losses.append(loss)
        self.redraw()

    def add_validation(self, step: int, value: float, name: str = "validation") -> None:
        """One validation: ``value`` of the metric called ``name``."""
        self.val_steps.append(step)
        self.val_scores.append(float(value))
        self.val_name = name.replace("_", " ")
        self.redraw(force=True)

    def val_range(self) -> tuple[float, float]:
        """The right axis: 0..1 for metrics that live there (F1, IoU, accuracy), else the values' range."""
        finite = [v for v in self.val_scores if np.isfinite(v)]
        if not finite:
            return 0.0, 1.0
        lo, hi = min(finite), max(finite)
        if lo >= 0 and hi <= 1 and hi > 0.05:
            return 0.0, 1.0
        pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
        return lo - pad, hi + pad

    def val_label(self) -> str:
        return _fmt(self.val_scores[-1]) if self.val_scores else ""

    def margins(self, fm) -> tuple[int, int]:
        """Left and right margins (pixels) wide enough for the axis labels in font metrics ``fm``."""
        y = np.asarray(self.losses, dtype=float)
        y = y[np.isfinite(y)]
        labels = [_fmt(float(y.min())), _fmt(float(y.max()))] if y.size else []
        left = max(fm.horizontalAdvance(t) for t in ["0.000", *labels]) + 10
        right = max(fm.horizontalAdvance(self.val_label() or "0.00") + 10, 28)
        return left, right

    def redraw(self, force: bool = False) -> None:
        """Schedule a repaint (cheap; Qt coalesces several into one)."""
        self.update()

    # ---------------------------------------------------------------- painting
    def _series(self, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Steps, losses (at most ~2 points per pixel) and a running mean once the curve is long."""
        x = np.asarray(self.steps, dtype=float)
        y = np.asarray(self.losses, dtype=float)
        k = max(1, len(y) // 50)
        smooth = np.convolve(y, np.ones(k) / k, mode="valid") if k > 1 else None
        step = max(1, len(x) // max(1, 2 * width))
        return x[::step], y[::step], smooth

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.fillRect(self.rect(), BG)
        font = QFont(p.font())
        font.setPointSizeF(7.5)
        p.setFont(font)
        left, right = self.margins(p.fontMetrics())
        top, bottom = 18, 18
        w, h = self.width() - left - right, self.height() - top - bottom
        if w < 10 or h < 10:
            p.end()
            return
        area = QRectF(left, top, w, h)
        p.setPen(QPen(FRAME, 1))
        p.drawRect(area)
        p.setPen(FG)
        # axis titles above the frame: "loss" over the left axis, the validation score's name over the right one
        p.setPen(LOSS)
        p.drawText(QRectF(4, 2, left + w / 2, 14), Qt.AlignmentFlag.AlignLeft, "loss")
        p.setPen(VAL)
        p.drawText(QRectF(left + w / 2, 2, w / 2 + right - 4, 14), Qt.AlignmentFlag.AlignRight, self.val_name)
        if not self.steps:
            p.setPen(FG)
            p.drawText(area, Qt.AlignmentFlag.AlignCenter, "loss appears here while training")
            p.end()
            return
        x, y, smooth = self._series(int(w))
        x0 = float(min(self.steps[0], self.val_steps[0] if self.val_steps else self.steps[0]))
        x1 = float(max(self.steps[-1], x0 + 1))
        finite = y[np.isfinite(y)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi - lo < 1e-12:
            hi = lo + 1.0

        def pt(sx: float, sy: float, ymin: float, ymax: float) -> QPointF:
            return QPointF(left + (sx - x0) / (x1 - x0) * w, top + (1 - (sy - ymin) / (ymax - ymin)) * h)

        p.setPen(QPen(QColor(LOSS.red(), LOSS.green(), LOSS.blue(), 110), 1))
        p.drawPolyline(QPolygonF([pt(a, b, lo, hi) for a, b in zip(x, y) if np.isfinite(b)]))
        if smooth is not None:
            k = len(self.losses) - len(smooth) + 1
            xs = np.asarray(self.steps[k - 1 :], dtype=float)
            stride = max(1, len(xs) // max(1, 2 * int(w)))
            p.setPen(QPen(LOSS, 1.6))
            p.drawPolyline(QPolygonF([pt(a, b, lo, hi) for a, b in zip(xs[::stride], smooth[::stride])]))
        if self.val_steps:
            vlo, vhi = self.val_range()
            pts = [pt(a, b, vlo, vhi) for a, b in zip(self.val_steps, self.val_scores) if np.isfinite(b)]
            p.setPen(QPen(VAL, 1.2))
            p.drawPolyline(QPolygonF(pts))
            p.setBrush(VAL)
            for q in pts:
                p.drawEllipse(q, 2.2, 2.2)
            if pts:
                y = min(max(pts[-1].y() - 6, top), top + h - 12)
                p.drawText(QRectF(left + w + 4, y, right - 4, 12), Qt.AlignmentFlag.AlignLeft, self.val_label())
        p.setPen(FG)
        p.drawText(QRectF(0, top + 12, left - 4, 12), Qt.AlignmentFlag.AlignRight, _fmt(hi))
        p.drawText(QRectF(0, top + h - 12, left - 4, 12), Qt.AlignmentFlag.AlignRight, _fmt(lo))
        p.drawText(QRectF(left, top + h + 2, 60, 14), Qt.AlignmentFlag.AlignLeft, f"step {int(x0)}")
        p.drawText(QRectF(left + w - 80, top + h + 2, 80, 14), Qt.AlignmentFlag.AlignRight, f"{int(x1)}")
        p.end()
