"""Several images of a data set as one stack in memory: classification across images.

Classification learns from object crops (or whole frames), which its task cuts from one
image held in memory. :func:`stack_images` makes that one image out of a whole data set:
every image normalised with its own percentiles, padded to the largest size, stacked
along a new first axis (its planes in turn), object ids made unique across images (an
offset per image) and the class annotations renumbered with them. Class tables number
objects (or frames) per image; after stacking they number them in the stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from .annotations import ClassAnnotations
from .sources import full_box

if TYPE_CHECKING:
    from .dataset import DataSet


def stack_images(ds: DataSet, *, frames: bool, max_values: int) -> tuple[np.ndarray, np.ndarray | None, str,
                                                                          ClassAnnotations]:
    """``(image, objects, axes, classes)`` of the whole set, in the canonical order with a stack axis.

    ``frames``: the items are frames (``classify-image``; class tables number each
    image's planes from 0), else objects of the annotations (``classify``). The
    image is ``(N, C, *spatial)`` normalised float32 (axes ``TCYX`` or ``TCZYX``),
    the objects ``(N, *spatial)`` (``None`` for frames). Refused, naming the sizes,
    when the stack would hold more than ``max_values`` values.
    """
    nd = ds.spatial_dims
    largest = tuple(max(lay.spatial_shape[d] for lay in ds.layouts) for d in range(nd))
    planes = sum(ds.n_planes(i) for i in range(len(ds)))
    size = planes * ds.n_channels * int(np.prod(largest))
    if size > max_values:
        raise InputError(f"classification across images holds them in memory, padded to the largest "
                         f"{'x'.join(map(str, largest))}: {planes} plane(s) would need {4 * size / 2**30:.1f} GiB; "
                         "train on fewer or smaller images, or crop them")
    image = np.zeros((planes, ds.n_channels, *largest), np.float32)
    objects = None if frames else np.zeros((planes, *largest), np.int64)
    classes: dict[int, object] = {}
    warnings: list[str] = []
    row, offset = 0, 0
    for i, s in enumerate(ds.samples):
        box = full_box(ds.layouts[i])
        inner = tuple(slice(0, b.stop) for b in box)
        top = 0
        for p in range(ds.n_planes(i)):
            image[(row + p, slice(None), *inner)] = ds.read_image(i, p, box)
            if objects is not None and s.labels is not None:
                lab = ds.read_labels(i, p, box).astype(np.int64)
                objects[(row + p, *inner)] = np.where(lab > 0, lab + offset, 0)
                top = max(top, int(lab.max()) if lab.size else 0)
        if s.classes is not None:
            shift = row if frames else offset
            classes.update({int(k) + shift: v for k, v in s.classes.classes.items()})
            warnings += [f"{s.name}: {w}" for w in s.classes.warnings]
        row += ds.n_planes(i)
        offset += top
    axes = "TC" + ("ZYX" if nd == 3 else "YX")
    return image, objects, axes, ClassAnnotations(classes, warnings)
