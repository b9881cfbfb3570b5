"""Widget side of classification: where classes come from, the result layer, the confusion matrix.

Main thread only. The engine's parsers (:mod:`.core.annotations`) do the work; this
module hands them the arrays and tables of napari layers and shows the results.
"""

from __future__ import annotations

from html import escape

import numpy as np
from napari.layers import Labels, Points
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from . import layers as L

BG, FG = "#262930", "#d0d0d0"  # napari dark theme, as in the loss plot

FEATURES = "features"
"""Class source: the ``class`` column of the objects layer's features table."""

#: One colour per class (by class index), also used for the live preview.
PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4",
           "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075"]


def class_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def source_choices(viewer, objects) -> list[tuple[str, object]]:
    """Where class annotations can come from: Points layers, Labels layers painted over the objects (same
    shape), the objects' features."""
    choices: list[tuple[str, object]] = []
    for layer in viewer.layers:
        if L.is_ours(layer):
            continue
        if isinstance(layer, Points):
            choices.append((f"points: {layer.name}", layer))
        elif isinstance(layer, Labels) and not L.same_layer(layer, objects) and \
                (objects is None or L.data_shape(layer) == L.data_shape(objects)):
            choices.append((f"painted: {layer.name}", layer))
    choices.append(("features of the objects layer", FEATURES))
    return choices


def frame_classes_from_points(points, n_frames: int):
    """Image classification: each point's first coordinate is its frame."""
    from ..core.data.annotations import classes_from_table
    from ..core.errors import InputError

    if "class" not in points.features:
        raise InputError(f"the Points layer {points.name!r} has no 'class' feature: add one in its features table")
    frames = [int(round(float(p[0]))) for p in np.asarray(points.data)]
    ann = classes_from_table({"frame": frames, "class": list(points.features["class"])}, ("frame",))
    outside = [f for f in ann.classes if not 0 <= f < n_frames]
    if outside:
        ann.warnings.append(f"{len(outside)} point(s) are not on a frame of the stack and were skipped")
        ann.classes = {k: v for k, v in ann.classes.items() if 0 <= k < n_frames}
    return ann


def class_request(source, objects, image=None, per_frame: bool = False):
    """Read the chosen class source on the GUI thread; return what turns it into class annotations later.

    The cheap parts (points, their classes, a features table) are read now, so that a missing
    ``class`` column is reported at once. The objects' label image is *not* read here: for a big
    lazy layer that would compute it on the GUI thread. The returned function takes the objects'
    label array (read in the worker) and returns :class:`~.core.annotations.ClassAnnotations`.
    """
    from ..core.data.annotations import classes_from_painted, classes_from_points, classes_from_table
    from ..core.errors import InputError

    if source is None:
        raise InputError("pick where the classes come from: a Points layer with a 'class' feature, a painted "
                         "Labels layer, or the objects layer's features")
    if per_frame:
        if not isinstance(source, Points):
            raise InputError("for image classification, put one point with a 'class' feature on each annotated frame")
        ann = frame_classes_from_points(source, L.data_shape(image)[0])
        return lambda labels: ann
    if objects is None:
        raise InputError("pick the Labels layer of the objects to classify")
    if source == FEATURES:
        features = objects.features
        if "class" not in features:
            raise InputError(f"the objects layer {objects.name!r} has no 'class' column in its features table")
        ids = features["index"] if "index" in features else range(len(features))
        table = {"label_id": list(ids), "class": list(features["class"])}
        return lambda labels: classes_from_table(table)
    if isinstance(source, Points):
        if "class" not in source.features:
            raise InputError(f"the Points layer {source.name!r} has no 'class' feature: add one in its features table")
        world = [source.data_to_world(p) for p in np.asarray(source.data)]
        coords = np.array([objects.world_to_data(w) for w in world]).reshape(-1, len(L.data_shape(objects)))
        classes = list(source.features["class"])
        return lambda labels: classes_from_points(labels, coords, classes)
    painted = L.snapshot(source)
    return lambda labels: classes_from_painted(labels, np.asarray(painted))


def object_classes(objects: np.ndarray, class_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per object id, the class value painted over it in ``class_image`` (a preview)."""
    inside = objects > 0
    ids, first = np.unique(objects[inside], return_index=True)
    return ids, class_image[inside][first]


def colormap(ids, class_index):
    """Each object id gets the colour of its class."""
    from napari.utils.colormaps import DirectLabelColormap

    colors = {None: "transparent", 0: "transparent"}
    colors.update({int(i): class_color(int(k)) for i, k in zip(ids, class_index)})
    return DirectLabelColormap(color_dict=colors)


def paint_result(layer, objects: np.ndarray, ids, class_index, features: dict | None = None) -> None:
    """Show ``objects`` in our result ``layer``, each object coloured by its class."""
    layer.data = np.asarray(objects, dtype=np.uint32)
    layer.colormap = colormap(ids, class_index)
    if features is not None:
        layer.features = features


def prediction_features(result) -> dict:
    """The features table of the result layer: one row per object (``index`` = its label id)."""
    return {"index": [int(i) for i in result.ids], "class": [str(c) for c in result.classes],
            "probability": np.round(result.probability, 4),
            "class_id": [int(result.class_values[k]) for k in result.index]}


class ConfusionPlot(QWidget):
    """The validation confusion matrix (rows: true class, columns: predicted class).

    matplotlib (about 0.5 s to import) is loaded when the first matrix is drawn, not when the widget opens.
    """

    def __init__(self):
        super().__init__()
        self.ax = None
        self.canvas = None
        self.matrix: np.ndarray | None = None
        QVBoxLayout(self).setContentsMargins(0, 0, 0, 0)
        self.setMinimumHeight(200)
        self.setVisible(False)

    def _axes(self):
        if self.ax is None:
            from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
            from matplotlib.figure import Figure

            fig = Figure(figsize=(3.2, 2.6), dpi=90, facecolor=BG, layout="tight")
            self.canvas = FigureCanvasQTAgg(fig)
            self.layout().addWidget(self.canvas)
            self.ax = fig.add_subplot(111)
        return self.ax

    def show_report(self, report: dict | None) -> None:
        """Draw ``report["confusion_matrix"]`` with class names and counts; hide when there is none."""
        if not report or not report.get("confusion_matrix"):
            self.matrix = None
            self.setVisible(False)
            return
        self.matrix = np.asarray(report["confusion_matrix"])
        names = [str(c) for c in report["classes"]]
        ax = self._axes()
        ax.clear()
        ax.set_facecolor(BG)
        ax.imshow(self.matrix, cmap="Blues", vmin=0)
        top = self.matrix.max() or 1
        for (r, c), v in np.ndenumerate(self.matrix):
            ax.text(c, r, str(v), ha="center", va="center", fontsize=7, color="white" if v > top / 2 else "black")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7, color=FG)
        ax.set_yticks(range(len(names)), names, fontsize=7, color=FG)
        ax.set_xlabel("predicted", color=FG, fontsize=7)
        ax.set_ylabel("true", color=FG, fontsize=7)
        ax.set_title(f"validation: accuracy {report['accuracy']:.2f}, macro F1 {report['macro_f1']:.2f} "
                     f"(n={report['n']})", color=FG, fontsize=7)
        self.setVisible(True)
        self.canvas.draw_idle()


def legend_entries(result) -> list[tuple[str, str, int]]:
    """``(class name, colour, count)`` per class of a :class:`~napari_bioimg.core.tasks.ClassPrediction`."""
    counts = np.bincount(np.asarray(result.index, dtype=int), minlength=len(result.class_names))
    return [(str(name), class_color(int(value) - 1), int(n))
            for name, value, n in zip(result.class_names, result.class_values, counts)]


class ClassLegend(QLabel):
    """Which colour is which class in the classified layer (hidden until there is a classification)."""

    def __init__(self):
        super().__init__()
        self.entries: list[tuple[str, str, int]] = []
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setVisible(False)

    def show_entries(self, entries: list[tuple[str, str, int]] | None, layer_name: str = "") -> None:
        self.entries = list(entries or [])
        if not self.entries:
            self.setVisible(False)
            return
        swatches = " &nbsp; ".join(
            f'<span style="color:{color}; font-size:14pt">&#9632;</span>&nbsp;{escape(name)}&nbsp;'
            f'<span style="color:#9a9a9a">({n})</span>' for name, color, n in self.entries)
        title = f"Classes in '{escape(layer_name)}': " if layer_name else "Classes: "
        self.setText(f'<span style="color:{FG}">{title}</span>{swatches}')
        self.setToolTip("Each object of the result layer has the colour of its predicted class; "
                        "the number of objects per class in brackets")
        self.setVisible(True)
