"""The *Training data* list: several image / annotation pairs to train one model on.

Rows are pairs the user adds: the picked image with its annotations (**Add pair**), every
pair of layers whose names match (**Add matching pairs**: ``X`` with ``X labels``,
``X_mask``, ``X-annotations``, ... by the data sets' naming rules), or the images of a
folder (**Add folder…**: read lazily from disk, annotated by the files named like them,
e.g. ``a.tif`` with ``a_mask.tif``). Images may differ in size. A row can be marked as
validation (held out whole) or removed. When the list holds pairs, Train trains on all of
them instead of the picked image. Main thread only; nothing here reads pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from magicgui.widgets import Container, PushButton
from napari.layers import Image, Labels
from psygnal import Signal
from qtpy.QtWidgets import QAbstractItemView, QFileDialog, QListWidget, QVBoxLayout, QWidget
from superqt import QCollapsible

from . import layers as L
from .pairing import mismatch_message, named_for, other_owner, stem
from .session import Sample


@dataclass
class Pair:
    """One row: an image (a layer's key, or a file) and its annotations (a layer's key, a file, or none)."""

    image: int | Path
    labels: int | Path | None = None
    split: str = "auto"

    @property
    def on_disk(self) -> bool:
        return isinstance(self.image, Path)


def matching_pairs(viewer) -> list[tuple]:
    """``(image layer, labels layer)`` whose names pair (``X`` / ``X labels``, ``X_mask``...) and shapes fit."""
    images = {stem(layer.name): layer for layer in viewer.layers
              if isinstance(layer, Image) and not L.is_ours(layer)}
    pairs = []
    for layer in viewer.layers:
        if not isinstance(layer, Labels) or L.is_ours(layer):
            continue
        base = named_for(layer)
        image = images.get(base) if base else None
        if image is not None and L.fits(layer, image):
            pairs.append((image, layer))
    return pairs


class TrainingData(QWidget):
    """The list and its buttons, in a collapsible section; ``changed`` fires when the rows change."""

    changed = Signal()
    said = Signal(str)
    """What a button did, in words (the widget shows it on its status line)."""

    def __init__(self, viewer, form, parent=None):
        super().__init__(parent)
        self.viewer, self.form = viewer, form
        self.pairs: list[Pair] = []
        self._shown: list[str] = []
        self._asked = None  # (image key, labels key) of a mismatched pair the user was warned about
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setMaximumHeight(110)
        self.list.setToolTip("Image / annotation pairs Train uses together (images may differ in size); "
                             "empty: Train uses the picked image")
        self.add_btn = PushButton(text="Add pair", tooltip="Add the picked image and its annotations")
        self.match_btn = PushButton(text="Add matching pairs",
                                    tooltip="Add every image layer X that has a Labels layer named 'X labels', "
                                            "'X_mask', 'X annotations', ... of its shape")
        self.folder_btn = PushButton(text="Add folder…",
                                     tooltip="Add the images of a folder (read from disk as needed); files named "
                                             "like an image with _mask, _labels, ... are its annotations")
        self.val_btn = PushButton(text="Validation", tooltip="Hold the selected pairs out whole, to validate on "
                                                             "(again: train on them)")
        self.remove_btn = PushButton(text="Remove", tooltip="Remove the selected pairs from the list")
        self.rows = [Container(widgets=[self.add_btn, self.match_btn, self.folder_btn], layout="horizontal",
                               labels=False),
                     Container(widgets=[self.val_btn, self.remove_btn], layout="horizontal", labels=False)]
        inner = QWidget()
        box = QVBoxLayout(inner)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.list)
        for row in self.rows:
            row.native.layout().setContentsMargins(0, 0, 0, 0)
            box.addWidget(row.native)
        self.section = QCollapsible("Training data (several images)")
        self.section.addWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.section)
        self.add_btn.changed.connect(lambda *_: self._say(self.add_current()))
        self.match_btn.changed.connect(lambda *_: self._say(self.add_matching()))
        self.folder_btn.changed.connect(lambda *_: self._say(self.add_folder()))
        self.val_btn.changed.connect(lambda *_: self.toggle_validation())
        self.remove_btn.changed.connect(lambda *_: self.remove_selected())

    # ---------------------------------------------------------------- adding and removing
    def _add(self, pair: Pair) -> bool:
        if any(p.image == pair.image for p in self.pairs):
            return False
        self.pairs.append(pair)
        return True

    def add_current(self) -> str:
        """Add the picked image (with the picked annotations when the task takes them); a message for the user."""
        image = self.form.image.value
        if image is None:
            return "Pick an image first."
        labels = self.form.annotations.value if self.form.uses("annotations") else None
        owner = other_owner(self.viewer, image, labels)
        pair_key = (L.layer_key(image), L.layer_key(labels) if labels is not None else None)
        if owner is not None and self._asked != pair_key:
            self._asked = pair_key
            return f"Not added: {mismatch_message(image, labels, owner)}, or press Add pair again to add it anyway."
        self._asked = None
        added = self._add(Pair(L.layer_key(image), L.layer_key(labels) if labels is not None else None))
        self.refresh()
        return f"Added '{image.name}'." if added else f"'{image.name}' is already in the list."

    def add_matching(self) -> str:
        found = matching_pairs(self.viewer)
        added = sum(self._add(Pair(L.layer_key(i), L.layer_key(lbl))) for i, lbl in found)
        self.refresh()
        if not found:
            return "No matching pairs: name a Labels layer like its image plus ' labels' (or _mask, _labels)."
        return f"Added {added} pair(s) of {len(found)} matching."

    def add_folder(self, folder: str | Path | None = None) -> str:
        """Add a folder's images (with the annotation files named like them); the data sets' rules and messages."""
        from ..core import BioimgError
        from ..core.data.collect import collect

        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Folder of images (and their annotations)")
            if not folder:
                return ""
        try:
            collection = collect([folder], [folder] if self.form.uses("annotations") else [], unlabelled="keep")
        except BioimgError as err:
            return f"Error: {err}"
        added = sum(self._add(Pair(e.image, e.labels)) for e in collection.entries)
        self.refresh()
        annotated = sum(e.labels is not None for e in collection.entries)
        return f"Added {added} image(s) from {Path(folder).name} ({annotated} annotated)."

    def _say(self, message: str) -> None:
        if message:
            self.said.emit(message)

    def remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.list.selectedIndexes()}, reverse=True)
        for r in rows:
            del self.pairs[r]
        self.refresh()

    def toggle_validation(self) -> None:
        for i in {i.row() for i in self.list.selectedIndexes()}:
            p = self.pairs[i]
            p.split = "auto" if p.split == "val" else "val"
        self.refresh(keep_selection=True)

    def clear(self) -> None:
        self.pairs.clear()
        self.refresh()

    # ---------------------------------------------------------------- showing
    def refresh(self, event=None, keep_selection: bool = False) -> None:
        """Drop rows whose layers were closed; show the current layer names."""
        selected = {i.row() for i in self.list.selectedIndexes()} if keep_selection else set()
        self.pairs = [p for p in self.pairs if p.on_disk or L.find_layer(self.viewer, p.image) is not None]
        for p in self.pairs:
            if p.labels is not None and not isinstance(p.labels, Path) and \
                    L.find_layer(self.viewer, p.labels) is None:
                p.labels = None
        shown = [self.describe(p) for p in self.pairs]
        if shown == self._shown and not keep_selection:
            return  # nothing the user sees changed (a layer was added elsewhere): no ``changed``
        self._shown = shown
        self.list.clear()
        for text in shown:
            self.list.addItem(text)
        for r in selected:
            if r < self.list.count():
                self.list.item(r).setSelected(True)
        self.section.setText(f"Training data ({len(self.pairs)} pair{'s' if len(self.pairs) != 1 else ''})"
                             if self.pairs else "Training data (several images)")
        self.changed.emit()

    def _name(self, ref) -> str:
        if isinstance(ref, Path):
            return ref.name
        layer = L.find_layer(self.viewer, ref)
        return layer.name if layer is not None else "?"

    def describe(self, p: Pair) -> str:
        text = self._name(p.image) + (f"  ←  {self._name(p.labels)}" if p.labels is not None else "  (no annotations)")
        return text + ("   [validation]" if p.split == "val" else "")

    # ---------------------------------------------------------------- for a run
    def samples(self) -> list[Sample]:
        """The rows as the worker will read them: copies of in-memory layers, lazy arrays and files as they are."""
        out = []
        for p in self.pairs:
            if p.on_disk:
                out.append(Sample(image_key=-1, image_name=p.image.name, image=p.image, shape=(),
                                  annotations=p.labels, split=p.split))
                continue
            image = L.find_layer(self.viewer, p.image)
            labels = L.find_layer(self.viewer, p.labels) if p.labels is not None else None
            out.append(Sample(image_key=p.image, image_name=image.name, image=L.snapshot(image),
                              shape=L.data_shape(image), rgb=bool(image.rgb),
                              annotations=L.snapshot(labels) if labels is not None else None, split=p.split,
                              axes=L.axes_choices(image)[0]))
        return out

    def image_layers(self) -> list:
        """The listed images that are layers of the viewer (what Predict several predicts by default)."""
        return [layer for p in self.pairs if not p.on_disk
                for layer in [L.find_layer(self.viewer, p.image)] if layer is not None]
