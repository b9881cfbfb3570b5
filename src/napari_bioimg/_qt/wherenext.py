"""*Where next?*: the most uncertain regions not yet annotated, a box drawn around the one to annotate.

:class:`WhereNext` reads the live session's ``<image> [uncertainty]`` layer (hidden or
not) and the annotation layer, asks the engine for the best regions
(:func:`napari_bioimg.core.live.suggest_regions`), moves the camera to one and draws
a rectangle around it in a ``where next`` Shapes layer of its own (never the user's
layers). :meth:`WhereNext.clear` empties the box and forgets the regions (after Stop).
Main thread only.
"""

from __future__ import annotations

import numpy as np

from . import layers as L

#: Name of the layer holding the box around the suggested region.
BOX_LAYER = "where next"
BOX_COLOUR = "#ffd400"


def camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


class WhereNext:
    """Suggested regions of one live session and the box around the current one."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.regions: list = []  # (selection over the layer's axes, Region), best first
        self.box_key = None

    def suggest(self, uncertainty, annotations, n: int = 5) -> list:
        """The ``n`` most uncertain regions of the current slice of ``uncertainty`` (a layer) not yet annotated in
        ``annotations`` (a layer or ``None``); goes to the first. Returns the regions (best first)."""
        from ..core.live import suggest_regions

        if uncertainty is None:
            self.regions = []
            return []
        index = L.data_index(uncertainty, self.viewer)
        displayed = [d - (self.viewer.dims.ndim - uncertainty.ndim) for d in self.viewer.dims.displayed[-2:]]
        sel = tuple(slice(None) if d in displayed else index[d] for d in range(uncertainty.ndim))
        values = np.asarray(uncertainty.data[sel])
        annotated = None
        if annotations is not None and tuple(annotations.data.shape) == tuple(uncertainty.data.shape):
            annotated = np.asarray(annotations.data[sel]) > 0
        side = int(np.clip(min(values.shape) // 4, 32, 256))
        self.regions = [(sel, r) for r in suggest_regions(values, annotated, size=side, n=n)]
        if self.regions:
            self.go_to(0, uncertainty)
        return [r for _, r in self.regions]

    def go_to(self, i: int, layer) -> None:
        """Centre the camera on suggestion ``i``, zoom to it and draw its box (``layer``: the uncertainty layer,
        whose pixels the regions count)."""
        if layer is None or not 0 <= i < len(self.regions):
            return
        sel, region = self.regions[i]
        self._draw(sel, region, layer)
        centre = iter(region.centre)
        point = [float(next(centre)) if isinstance(s, slice) else float(s) for s in sel]
        world = np.asarray(layer.data_to_world(point))
        camera(self.viewer).center = tuple(world[list(self.viewer.dims.displayed)])
        # zoom so the region fills most of the view: compare its size with what is visible now
        size = max(b.stop - b.start for b in region.box)
        try:
            corners = np.asarray(layer.corner_pixels)
            shown = [corners[1, d] - corners[0, d] + 1 for d in range(layer.ndim) if isinstance(sel[d], slice)]
            visible = float(min(shown))
        except Exception:  # noqa: BLE001 (no canvas yet)
            return
        if visible > 0:
            camera(self.viewer).zoom = camera(self.viewer).zoom * visible / (size / 0.7)

    def _draw(self, sel, region, layer) -> None:
        """The rectangle around ``region`` (pixel edges), in a Shapes layer aligned with ``layer``."""
        boxes = iter(region.box)
        lo, hi = [], []
        for s in sel:
            if isinstance(s, slice):
                b = next(boxes)
                lo.append(b.start - 0.5)
                hi.append(b.stop - 0.5)
            else:
                lo.append(float(s))
                hi.append(float(s))
        spatial = [d for d, s in enumerate(sel) if isinstance(s, slice)]
        a, b = spatial[-2], spatial[-1]
        corners = []
        for ya, xb in ((lo[a], lo[b]), (lo[a], hi[b]), (hi[a], hi[b]), (hi[a], lo[b])):
            point = list(lo)
            point[a], point[b] = ya, xb
            corners.append(point)
        rect = np.asarray(corners, float)
        shapes = L.find_layer(self.viewer, self.box_key)
        if shapes is not None and shapes.ndim != rect.shape[1]:
            self.viewer.layers.remove(shapes)
            shapes = None
        if shapes is None:
            active = L.active_key(self.viewer)
            shapes = self.viewer.add_shapes([rect], shape_type="rectangle", name=BOX_LAYER, edge_color=BOX_COLOUR,
                                            face_color="transparent", edge_width=3, scale=layer.scale,
                                            translate=layer.translate)
            shapes.editable = False
            self.box_key = L.layer_key(shapes)
            if active is not None:
                L.select(self.viewer, active)  # the user goes on painting in their layer
        else:
            shapes.data = [rect]
            shapes.shape_type = "rectangle"
            shapes.edge_color, shapes.face_color, shapes.edge_width = BOX_COLOUR, "transparent", 3
            shapes.visible = True

    def clear(self) -> None:
        """Forget the regions and empty the box layer (emptied and hidden, not removed: napari collects garbage
        on every layer removal, a ~1 s freeze; the next suggestion reuses the layer)."""
        self.regions = []
        shapes = L.find_layer(self.viewer, self.box_key)
        if shapes is not None and len(shapes.data):
            shapes.data = []
            shapes.visible = False
