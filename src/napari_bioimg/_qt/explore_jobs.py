"""The Explore objects widget's parts: the record of a run, the explanation layer, the click that selects an
object, showing an object. (The jobs its workers run are in :mod:`.jobs`, started by its
:class:`~.session.Session`.)"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import layers as L
from . import object_features as OF

EXPLANATION = "explanation"


@dataclass
class Exploring:
    """One embedding or explanation: the objects layer it is for, and how far it got."""

    objects: int
    """The objects layer's key (results go into its features)."""
    source: str | None
    """An embedding's features (``"autoencoder"`` or ``"classifier"``); ``None``: an explanation."""
    stage: str | None = None
    """What the progress bar shows now."""
    done: bool = False
    """Its result is in (events still queued are not shown)."""


def preload() -> None:
    """Import the analysis engine (torch and friends) ahead of the first click, off the GUI thread."""
    import napari_bioimg.core.analysis  # noqa: F401


def show_explanation(viewer, objects, result) -> str:
    """Write an explanation's per-object columns into ``objects.features`` and its map into
    ``<objects> [explanation]`` (main thread); returns the status line."""
    objects.features = OF.merge_columns(objects.features, result.ids, result.columns("index"))
    name = f"{objects.name} [{EXPLANATION}]"
    axes = "TZYX"[-objects.ndim:] if objects.ndim <= 4 else None
    layer = L.result_layer(viewer, objects, name, "image", result.image.shape, np.float32, axes or "")
    layer.data = result.image
    layer.colormap = "inferno"
    layer.contrast_limits = (0.0, 1.0)
    layer.blending = "additive"
    layer.opacity = 0.8
    counts = {str(c): int(n) for c, n in zip(result.class_names,
                                              np.bincount(result.index, minlength=len(result.class_names)))}
    low = int(np.sum(result.margin < 0.2))
    return (f"Explained {len(result.ids)} objects: predicted {counts}; {low} with a margin "
            "below 0.2 (uncertain). Bright = what raised the predicted class's score.")


def click_selects(layer, event) -> None:
    """A mouse callback: a click (pan/zoom mode) on an object selects it; painting modes keep their meaning."""
    if getattr(layer, "mode", "pan_zoom") != "pan_zoom" or event.type != "mouse_press":
        return
    value = layer.get_value(event.position, view_direction=event.view_direction,
                            dims_displayed=event.dims_displayed, world=True)
    if value is not None and int(value) > 0:
        layer.selected_label = int(value)


def show_object(viewer, layer, emb, label_id: int) -> None:
    """Make a picked object visible in the viewer: shown alone (napari's *show selected*), the camera on it."""
    layer.show_selected_label = True
    if emb is None or label_id not in emb.ids:
        return
    center = emb.table.center[int(np.searchsorted(emb.ids, label_id))]
    if len(center) == layer.ndim:
        from .live import camera

        cam = camera(viewer)
        cam.center = tuple(layer.data_to_world(center)[-len(cam.center):])
