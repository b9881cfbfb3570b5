"""Giving objects a class in the widget, for *Classify objects*: pick a class, click objects.

**Mark objects** adds (or reuses) a Points layer ``classes`` with a ``class`` feature, makes
it the selected layer in napari's add-points mode, and sets the class every new point gets
(napari's ``feature_defaults``): each click inside an object marks that object with the class
picked under *Class*. Points are coloured by class (the colours of the result layer). The
form's *Classes* picker takes this layer like any Points layer with a ``class`` feature.
No Python console and no features table needed: napari's features table cannot add a
column. Main thread only; the user's other layers are never touched.
"""

from __future__ import annotations

import numpy as np
from magicgui.widgets import Container, PushButton, SpinBox
from psygnal import Signal

from . import classes as C
from . import layers as L

LAYER = "classes"
"""The name of the Points layer the marks go into."""


def class_counts(source, objects=None) -> dict | None:
    """``{class: number of marks}`` of a class source: a Points layer's points, the objects' ``class`` column;
    ``None`` when it cannot be told without reading pixels (a painted Labels layer)."""
    from napari.layers import Points

    if isinstance(source, Points):
        if "class" not in source.features or not len(source.data):
            return {}
        values = source.features["class"]
    elif source == C.FEATURES and objects is not None:
        if "class" not in objects.features:
            return {}
        values = objects.features["class"].dropna()
    else:
        return None
    names, counts = np.unique(np.asarray([str(v) for v in values]), return_counts=True)
    return dict(zip(names.tolist(), counts.tolist()))


def _index(name) -> int:
    """The colour index of a class name ("2" -> 1); other names share the first colour."""
    text = str(name)
    return int(text) - 1 if text.isdigit() and int(text) > 0 else 0


def describe(counts: dict, what: str = "objects") -> str:
    """The marks so far in words: "class 1: 3 objects, class 2: 1 object"."""
    one = what.rstrip("s")
    return ", ".join(f"class {k}: {n} {what if n != 1 else one}" for k, n in counts.items())


class ClassMarker:
    """The *Class* number and **Mark objects** button; ``changed`` fires when marks are added or removed."""

    changed = Signal()

    def __init__(self, viewer):
        self.viewer = viewer
        self.cls = SpinBox(label="Class", value=1, min=1, max=len(C.PALETTE),
                           tooltip="The class the next clicked objects get (1, 2, …; the colour is the class's)")
        self.mark_btn = PushButton(text="Mark objects",
                                   tooltip=f"Click objects in the image to give them the class on the left (a point "
                                           f"each, in the Points layer '{LAYER}'); change the class, click more")
        self.row = Container(widgets=[self.cls, self.mark_btn], layout="horizontal", labels=True)
        self._key = None
        self.cls.changed.connect(self._set_class)
        self.mark_btn.changed.connect(lambda *_: self.start())

    def layer(self):
        """Our marks layer, if it is still in the viewer."""
        return L.find_layer(self.viewer, self._key)

    def start(self) -> None:
        """Make the marks layer the selected one, in add mode, with the current class."""
        layer = self.layer()
        if layer is None:
            layer = self._add_layer()
        self.viewer.layers.selection.active = layer
        layer.mode = "add"
        self._set_class()

    def _add_layer(self):
        ndim = max((lay.ndim for lay in self.viewer.layers), default=2)
        layer = self.viewer.add_points(np.empty((0, ndim)), name=LAYER, features={"class": np.empty(0, object)},
                                       size=8, border_color="white", face_color=C.class_color(0))
        self._key = L.layer_key(layer)
        layer.events.data.connect(self._on_marks)
        return layer

    def _on_marks(self, *_) -> None:
        """Each mark in its class's colour (napari cannot colour an empty layer by a feature); tell the widget."""
        layer = self.layer()
        if layer is not None and len(layer.data):
            layer.face_color = [C.class_color(_index(c)) for c in layer.features["class"]]
        self.changed.emit()

    def _set_class(self, *_) -> None:
        layer = self.layer()
        if layer is not None:
            layer.feature_defaults = {"class": str(self.cls.value)}  # a category (not a number)
            layer.current_face_color = C.class_color(self.cls.value - 1)
