"""The 2D embedding plot: one point per object; click a point, or lasso several.

Main thread only. Redraws are kept cheap: the scatter is drawn when the points,
their colours or the selection change; the highlight of the current object (which
follows every click in the viewer) is blitted over a cached background, so it
costs a few milliseconds even with 10,000 points.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.path import Path as MplPath
from matplotlib.widgets import LassoSelector

from .classes import class_color

BG, FG = "#262930", "#d0d0d0"  # napari's dark theme, as the other plots
POINT = "#8a93a3"
HIGHLIGHT = "#ffe14d"
SELECTED_EDGE = "#ffffff"
CLICK_PIXELS = 10
"""A lasso shorter than this (in screen pixels) is a click: it picks the nearest point."""


class EmbeddingPlot(FigureCanvasQTAgg):
    """Scatter of objects on their 2D map, linked to an objects layer by callbacks.

    Parameters
    ----------
    on_pick
        Called with a label id when the user clicks a point.
    on_select
        Called with the selected label ids after a lasso.
    """

    def __init__(self, on_pick: Callable[[int], None] | None = None,
                 on_select: Callable[[np.ndarray], None] | None = None):
        fig = Figure(figsize=(3.4, 3.0), dpi=90, facecolor=BG, layout="tight")
        super().__init__(fig)
        self.on_pick, self.on_select = on_pick, on_select
        self.ax = fig.add_subplot(111)
        self.ids = np.zeros(0, np.int64)
        self.coords = np.zeros((0, 2), np.float32)
        self.classes: list[str] = []
        self.selected = np.zeros(0, np.int64)
        self.highlighted: int | None = None
        self.title = ""
        self._background = None
        self._row: dict[int, int] = {}
        self._style_axes()
        (self._marker,) = self.ax.plot([], [], "o", ms=13, mfc="none", mec=HIGHLIGHT, mew=2.2, animated=True)
        self._lasso = LassoSelector(self.ax, self._lasso_done, useblit=True, props={"color": HIGHLIGHT, "lw": 1.2})
        self.mpl_connect("draw_event", self._on_draw)
        self.setMinimumHeight(260)

    # ------------------------------------------------------------------ data
    def set_points(self, ids: np.ndarray, coords: np.ndarray, classes: list[str] | None = None,
                   title: str = "") -> None:
        """Show ``coords`` ``(M, 2)`` of label ``ids``; ``classes``: one class name (or "") per point."""
        self.ids = np.asarray(ids, dtype=np.int64)
        self.coords = np.asarray(coords, dtype=np.float32).reshape(-1, 2)
        self._row = {int(i): k for k, i in enumerate(self.ids)}
        self.classes = list(classes) if classes is not None else [""] * len(self.ids)
        self.selected = np.zeros(0, np.int64)
        self.highlighted = None
        self.title = title
        self.redraw()

    def set_classes(self, classes: list[str]) -> None:
        """Colour the points by class (``""`` = none)."""
        self.classes = list(classes)
        self.redraw()

    def select(self, ids) -> None:
        """Mark ``ids`` as selected (drawn with a white ring) and report them to ``on_select``."""
        ids = np.asarray(ids, dtype=np.int64)
        self.selected = ids[np.isin(ids, self.ids)]
        self.redraw()
        if self.on_select is not None:
            self.on_select(self.selected)

    def highlight(self, label_id: int | None) -> None:
        """Ring the point of ``label_id`` (``None`` or an unknown id: no ring). Blitted: cheap."""
        row = self._row.get(int(label_id)) if label_id is not None else None
        self.highlighted = None if row is None else int(label_id)
        if row is None:
            self._marker.set_data([], [])
        else:
            self._marker.set_data([self.coords[row, 0]], [self.coords[row, 1]])
        self._blit_marker()

    # ------------------------------------------------------------------ drawing
    def _style_axes(self) -> None:
        ax = self.ax
        ax.set_facecolor(BG)
        ax.tick_params(colors=FG, labelsize=7)
        for spine in ax.spines.values():
            spine.set_color("#555a63")

    def redraw(self) -> None:
        """Draw the scatter again (new points, colours or selection)."""
        ax = self.ax
        for artist in list(ax.collections):
            artist.remove()
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
        if len(self.ids):
            names = sorted({c for c in self.classes if c})
            colors = np.array([class_color(names.index(c)) if c else POINT for c in self.classes], dtype=object)
            size = 14 if len(self.ids) < 2000 else 5
            ax.scatter(self.coords[:, 0], self.coords[:, 1], s=size, c=list(colors), linewidths=0, alpha=0.85)
            if len(self.selected):
                rows = [self._row[int(i)] for i in self.selected]
                ax.scatter(self.coords[rows, 0], self.coords[rows, 1], s=size * 2.2, facecolors="none",
                           edgecolors=SELECTED_EDGE, linewidths=0.8)
            for k, name in enumerate(names):
                ax.scatter([], [], s=20, c=class_color(k), label=name)
            if names:
                ax.legend(loc="best", fontsize=7, frameon=False, labelcolor=FG, handletextpad=0.2)
            pad = 0.05 * max(float(np.ptp(self.coords[:, 0])), float(np.ptp(self.coords[:, 1])), 1e-6)
            ax.set_xlim(self.coords[:, 0].min() - pad, self.coords[:, 0].max() + pad)
            ax.set_ylim(self.coords[:, 1].min() - pad, self.coords[:, 1].max() + pad)
        ax.set_title(self.title, color=FG, fontsize=8)
        if self.highlighted is not None and self.highlighted in self._row:
            row = self._row[self.highlighted]
            self._marker.set_data([self.coords[row, 0]], [self.coords[row, 1]])
        self._background = None
        self.draw_idle()

    def _on_draw(self, event=None) -> None:
        self._background = self.copy_from_bbox(self.ax.bbox)
        self.ax.draw_artist(self._marker)

    def _blit_marker(self) -> None:
        if self._background is None:
            self.draw_idle()  # the draw event caches the background and paints the marker
            return
        self.restore_region(self._background)
        self.ax.draw_artist(self._marker)
        self.blit(self.ax.bbox)

    # ------------------------------------------------------------------ interaction
    def _lasso_done(self, verts) -> None:
        verts = np.asarray(verts, dtype=np.float64).reshape(-1, 2)
        if not len(self.ids) or not len(verts):
            return
        screen = self.ax.transData.transform(verts)
        if len(verts) < 3 or np.ptp(screen, axis=0).max() < CLICK_PIXELS:
            self.click(*verts[-1])
            return
        inside = MplPath(verts).contains_points(self.coords)
        self.select(self.ids[inside])

    def lasso(self, verts) -> None:
        """Select the points inside the polygon ``verts`` (data coordinates), as a lasso drawn by hand."""
        self._lasso_done(verts)

    def click(self, x: float, y: float) -> int | None:
        """Pick the point nearest to ``(x, y)`` (data coordinates) within a few screen pixels."""
        if not len(self.ids):
            return None
        screen = self.ax.transData.transform(self.coords)
        at = self.ax.transData.transform([[x, y]])[0]
        d = np.hypot(*(screen - at).T)
        row = int(d.argmin())
        if d[row] > CLICK_PIXELS:
            return None
        label_id = int(self.ids[row])
        self.highlight(label_id)
        if self.on_pick is not None:
            self.on_pick(label_id)
        return label_id
