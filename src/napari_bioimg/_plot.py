"""A small live loss / validation plot for the dock widget (matplotlib in Qt)."""

from __future__ import annotations

import time

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

FG = "#d0d0d0"
BG = "#262930"  # napari's dark theme background


class LossPlot(FigureCanvasQTAgg):
    """Training loss (left axis) and validation score (right axis) against step.

    Redraws at most every ``min_interval`` seconds, so a fast training loop cannot
    flood the GUI thread with drawing work.
    """

    def __init__(self, min_interval: float = 0.5):
        fig = Figure(figsize=(3.2, 1.8), dpi=90, facecolor=BG, layout="tight")
        super().__init__(fig)
        self.ax = fig.add_subplot(111)
        self.ax2 = self.ax.twinx()
        self.min_interval = min_interval
        self._last_draw = 0.0
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.val_steps: list[int] = []
        self.val_scores: list[float] = []
        self.val_name = "validation"
        self.setMinimumHeight(150)
        self._style()
        self.draw_idle()

    def _style(self) -> None:
        for ax in (self.ax, self.ax2):
            ax.set_facecolor(BG)
            ax.tick_params(colors=FG, labelsize=7)
            for spine in ax.spines.values():
                spine.set_color("#555555")
        self.ax.set_xlabel("step", color=FG, fontsize=7)
        self.ax.set_ylabel("loss", color="#4fc3f7", fontsize=7)
        self.ax2.set_ylabel(self.val_name, color="#ffb74d", fontsize=7)

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

    def add_validation(self, step: int, score: float, name: str = "validation") -> None:
        self.val_steps.append(step)
        self.val_scores.append(score)
        self.val_name = name
        self.redraw(force=True)

    def redraw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        self.ax.clear()
        self.ax2.clear()
        self._style()
        if self.steps:
            self.ax.plot(self.steps, self.losses, color="#4fc3f7", lw=0.8, alpha=0.5)
            k = max(1, len(self.losses) // 50)
            if k > 1:  # running mean, so the trend is readable
                import numpy as np

                sm = np.convolve(self.losses, np.ones(k) / k, mode="valid")
                self.ax.plot(self.steps[k - 1 :], sm, color="#4fc3f7", lw=1.5)
        if self.val_steps:
            self.ax2.plot(self.val_steps, self.val_scores, "o-", color="#ffb74d", ms=3, lw=1)
            self.ax2.set_ylim(0, max(1.0, max(self.val_scores) * 1.05))
        self.draw_idle()
