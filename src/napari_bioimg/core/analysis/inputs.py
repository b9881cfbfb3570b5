"""An image and its objects as the analysis jobs take them: normalised, in the engine's layout, measured."""

from __future__ import annotations

import numpy as np

from ..data.axes import make_layout
from ..data.normalize import Normalizer
from ..data.objects import measure_objects
from ..errors import InputError
from ..tasks.base import require_labels


def prepare_objects(image, labels, axes, spatial_dims, rgb, axes_hint, normalizer: Normalizer | None):
    """Canonical normalised image ``(N, C, *S)``, labels ``(N, *S)`` and their object table.

    ``normalizer``: a model's stored percentiles (else fitted to this image).
    """
    image = np.asarray(image)
    layout = make_layout(image.shape, axes, spatial_dims, rgb=rgb, hint=axes_hint)
    lbl = layout.labels_to_canonical(require_labels(labels, "embed"))
    x = layout.to_canonical(image).astype(np.float32, copy=False)
    xn = (normalizer or Normalizer().fit(x)).apply(x, refit=False)
    table = measure_objects(lbl)
    if not len(table):
        raise InputError("the objects layer is empty (all 0): segment or load objects before embedding them")
    return layout, xn, lbl, table


def prepare_for_model(loaded, image, labels, axes, rgb, axes_hint):
    """:func:`prepare_objects` for a loaded classify model: its axes when none are given, its dimensionality and
    stored normalisation; refuses an image whose channel count differs from the model's."""
    image = np.asarray(image)
    if axes is None and image.ndim == len(loaded.axes):
        axes = loaded.axes
    layout, xn, lbl, table = prepare_objects(image, labels, axes, loaded.spatial_dims, rgb, axes_hint, loaded.normalizer)
    channels = loaded.meta["image_channels"]
    if layout.n_channels != channels:
        raise InputError(f"the model expects {channels} image channel(s) but the image has {layout.n_channels} "
                         f"(axes {layout.axes}); check the axes or pick another image")
    return layout, xn, lbl, table
