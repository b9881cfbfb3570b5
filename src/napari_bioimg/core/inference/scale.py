"""Object size and input kind: bring an image to what a model was trained on, and its result back.

* **Object diameter** (pixels, as cellpose's): a model learnt objects of some size (a
  built-in a range of sizes, its card's ``object_diameter``; a model of ours the
  median object of its annotations). Given the diameter of the user's objects (or
  ``"auto"``: estimated from the image), the image is zoomed so its objects have the
  model's typical size, predicted, and the result zoomed back to the image's pixels.
  A diameter far outside what the model saw is predicted anyway, with a warning that
  names the range.
* **RGB into a one-channel model** (an image marked RGB, as napari's RGB layers are): converted to grey
  (luminance), with a notice. Other channel mismatches stay an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..data.axes import make_layout
from ..errors import InputError
from ..events import Notice
from ..formats.checkpoint import LoadedModel

#: A diameter more than this factor outside the model's range is warned about.
FAR = 1.5
#: Zoom factors closer to 1 than this are not applied (the model's own scale).
SAME = 0.05
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def model_diameter(loaded: LoadedModel) -> tuple[float, tuple[float, float]] | None:
    """``(typical, (smallest, largest))`` object diameter in pixels the model was trained on, or ``None``."""
    card = loaded.card
    if card.builtin and card.builtin.get("object_diameter"):
        d = card.builtin["object_diameter"]
        return float(d["typical"]), (float(d["range"][0]), float(d["range"][1]))
    area = float(loaded.meta.get("median_area") or 0)
    if area <= 0:
        return None
    typical = 2 * np.sqrt(area / np.pi) if loaded.spatial_dims == 2 else (6 * area / np.pi) ** (1 / 3)
    return float(typical), (float(typical) / 2, float(typical) * 2)


def equivalent_diameter(labels: np.ndarray) -> float | None:
    """Median diameter of the objects of a label image (of a disc / ball of the same area / volume)."""
    labels = np.asarray(labels)
    sizes = np.bincount(labels.ravel().astype(np.int64))[1:] if labels.size and labels.max() > 0 else np.array([])
    sizes = sizes[sizes > 0]
    if sizes.size == 0:
        return None
    v = float(np.median(sizes))
    return float(2 * np.sqrt(v / np.pi)) if labels.ndim == 2 else float((6 * v / np.pi) ** (1 / 3))


def estimate_diameter(image: np.ndarray) -> float | None:
    """A rough object diameter of a one-channel 2D/3D image: Otsu's threshold, connected bright parts."""
    from skimage.filters import threshold_otsu

    x = ndi.gaussian_filter(np.asarray(image, np.float32), 1.0)
    if not np.isfinite(x).all() or x.max() <= x.min():
        return None
    parts, n = ndi.label(x > threshold_otsu(x))
    return equivalent_diameter(parts) if n else None


@dataclass
class Rescaled:
    """How an image was zoomed for the model: zoom the result back with :meth:`back`."""

    shape: tuple[int, ...]
    axes: str
    factors: tuple[float, ...]

    def back(self, result: Any) -> Any:
        if result is None:
            return None
        result = np.asarray(result)
        labels = result.dtype.kind in "iub"
        target = list(self.shape)
        if result.ndim != len(target):  # labels have no channel axis
            target = [s for a, s in zip(self.axes, self.shape) if a != "C"]
        factors = [t / s for t, s in zip(target, result.shape)]
        out = ndi.zoom(result, factors, order=0 if labels else 1, grid_mode=True, mode="nearest")
        return out[tuple(slice(0, t) for t in target)]


def adapt_input(loaded: LoadedModel, image: np.ndarray, axes: str | None, *, diameter: float | str | None,
                rgb: bool = False, axes_hint: str | None = None
                ) -> tuple[np.ndarray, str | None, bool, Rescaled | None, list[Notice]]:
    """``(image, axes, rgb, rescaled or None, notices)``: the image as the model wants it (see the module)."""
    notices: list[Notice] = []
    image = np.asarray(image)
    layout = make_layout(tuple(image.shape), axes, loaded.spatial_dims, rgb=rgb, hint=axes_hint)
    if rgb and loaded.image_channels == 1 and layout.n_channels in (3, 4) and "C" in layout.axes:
        c = layout.axes.index("C")
        rgb_part = np.take(image.astype(np.float32), [0, 1, 2], axis=c)
        image = np.tensordot(rgb_part, LUMA, axes=([c], [0]))
        axes, rgb = layout.axes.replace("C", ""), False
        notices.append(Notice("the model takes one channel: the RGB image was converted to grey (luminance)",
                              "info"))
        layout = make_layout(tuple(image.shape), axes, loaded.spatial_dims)
    if diameter is None:
        return image, axes or layout.axes, rgb, None, notices
    scale = model_diameter(loaded)
    if scale is None:
        raise InputError("this model does not know the size of the objects it learnt; leave the object "
                         "diameter empty", field="diameter")
    typical, (low, high) = scale
    if diameter == "auto":
        plane = layout.to_canonical(image)[0, 0] if loaded.spatial_dims == 2 else layout.to_canonical(image)[0, 0]
        guess = estimate_diameter(plane)
        if guess is None:
            notices.append(Notice("the object diameter could not be estimated from the image: predicted at the "
                                  "model's own scale", "warning"))
            return image, layout.axes, rgb, None, notices
        diameter = guess
        notices.append(Notice(f"object diameter estimated from the image: {guess:.0f} px", "info"))
    try:
        diameter = float(diameter)
    except (TypeError, ValueError):
        raise InputError(f"must be a number of pixels or 'auto', got {diameter!r}", field="diameter") from None
    if not np.isfinite(diameter) or diameter <= 0:
        raise InputError(f"must be a positive number of pixels, got {diameter:g}", field="diameter")
    if diameter < low / FAR or diameter > high * FAR:
        notices.append(Notice(f"objects of {diameter:g} px are far outside the sizes this model was trained on "
                              f"({low:g}-{high:g} px): the image is rescaled, but check the result", "warning"))
    factor = typical / diameter
    if abs(factor - 1) < SAME:
        return image, layout.axes, rgb, None, notices
    factors = tuple(factor if a in layout.spatial_axes else 1.0 for a in layout.axes)
    zoomed = ndi.zoom(image.astype(np.float32), factors, order=1, grid_mode=True, mode="nearest")
    notices.append(Notice(f"objects of {diameter:g} px: the image is rescaled by {factor:.2f} to the model's "
                          f"{typical:.0f} px and the result back", "info"))
    return zoomed, layout.axes, rgb, Rescaled(tuple(image.shape), layout.axes, factors), notices
