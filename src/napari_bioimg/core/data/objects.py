"""Objects of a label image: where each one is, and fixed-size crops around them.

Arrays are canonical: images ``(N, C, *spatial)`` and labels ``(N, *spatial)``. An
object is a label id. When the same id appears in several samples (a 3D nucleus
cut into 2D slices, a tracked cell over time), the object is represented by the
sample where it has the most pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage as ndi
from torch.nn import functional as F

from ..errors import InputError


@dataclass
class ObjectTable:
    """One row per object id, sorted by id.

    Attributes
    ----------
    ids
        Label ids ``(M,)``.
    sample
        Sample (frame/slice) where the object is largest ``(M,)``.
    center
        Bounding-box centre in that sample, in pixels ``(M, ndim)``.
    extent
        Bounding-box size in that sample ``(M, ndim)``.
    area
        Pixels of the object in that sample ``(M,)``.
    """

    ids: np.ndarray
    sample: np.ndarray
    center: np.ndarray
    extent: np.ndarray
    area: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, ids) -> np.ndarray:
        """Row numbers of ``ids`` (all must be present)."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self.ids, ids)
        pos = np.clip(pos, 0, max(len(self.ids) - 1, 0))
        if len(self.ids) == 0 or not np.array_equal(self.ids[pos], ids):
            raise InputError("some object ids are not in the objects layer")
        return pos


def measure_objects(labels: np.ndarray) -> ObjectTable:
    """Find every object of ``labels`` ``(N, *spatial)`` (0 = background)."""
    labels = np.asarray(labels)
    nd = labels.ndim - 1
    best: dict[int, tuple[int, int, np.ndarray, np.ndarray]] = {}
    for n in range(labels.shape[0]):
        ids, inverse = np.unique(labels[n], return_inverse=True)
        inverse = inverse.reshape(labels.shape[1:])
        if ids[0] == 0:
            ids = ids[1:]
        else:
            inverse = inverse + 1
        if ids.size == 0:
            continue
        areas = np.bincount(inverse.ravel(), minlength=ids.size + 1)[1:]
        for k, box in enumerate(ndi.find_objects(inverse)):
            if box is None:
                continue
            i, area = int(ids[k]), int(areas[k])
            if i not in best or area > best[i][1]:
                lo = np.array([b.start for b in box])
                hi = np.array([b.stop for b in box])
                best[i] = (n, area, (lo + hi) / 2.0, hi - lo)
    order = sorted(best)
    return ObjectTable(
        ids=np.array(order, dtype=np.int64),
        sample=np.array([best[i][0] for i in order], dtype=np.int64),
        center=np.array([best[i][2] for i in order], dtype=np.float64).reshape(-1, nd),
        extent=np.array([best[i][3] for i in order], dtype=np.int64).reshape(-1, nd),
        area=np.array([best[i][1] for i in order], dtype=np.int64),
    )


def choose_crop(extents: np.ndarray, max_size: tuple[int, ...]) -> tuple[tuple[int, ...], float]:
    """Crop size and zoom that fit most objects with some context around them.

    The crop covers the 90th-percentile object extent plus 25% and 4 pixels of
    context, rounded up to a multiple of 4. If that exceeds ``max_size``, crops
    are cut at that size and shrunk by ``zoom`` (< 1) to fit.

    Returns
    -------
    size, zoom
        Crop size in network pixels and the image-to-network scale.
    """
    want = np.percentile(extents, 90, axis=0) * 1.25 + 4 if len(extents) else np.full(len(max_size), 16.0)
    want = np.maximum(4 * np.ceil(want / 4), 8)
    zoom = float(min(1.0, *(m / w for m, w in zip(max_size, want))))
    size = tuple(int(min(m, max(8, 4 * np.ceil(w * zoom / 4)))) for m, w in zip(max_size, want))
    return size, zoom


def object_crops(inputs: np.ndarray, labels: np.ndarray, table: ObjectTable, rows: np.ndarray,
                 size: tuple[int, ...], zoom: float = 1.0, mask: bool = True) -> np.ndarray:
    """Crops centred on objects, with the object's mask as a last channel.

    Parameters
    ----------
    inputs, labels
        ``(N, C, *spatial)`` normalised image and ``(N, *spatial)`` objects.
    rows
        Rows of ``table`` to crop.
    size
        Output crop size per spatial dim.
    zoom
        Network pixels per image pixel; < 1 cuts a larger box and shrinks it.
    mask
        Add the object mask (1 inside the object, 0 elsewhere) as a channel.

    Returns
    -------
    ``(len(rows), C + mask, *size)`` float32. Parts outside the image are 0 (the
    normalised low value), so objects at the border are padded, not dropped.
    """
    rows = np.asarray(rows, dtype=np.int64)
    spatial = labels.shape[1:]
    box = tuple(int(round(s / zoom)) for s in size)
    c = inputs.shape[1]
    out = np.zeros((len(rows), c + int(mask), *box), dtype=np.float32)
    for k, r in enumerate(rows):
        n = int(table.sample[r])
        start = [int(np.floor(ce - b / 2.0)) for ce, b in zip(table.center[r], box)]
        src = tuple(slice(max(0, a), min(s, a + b)) for a, b, s in zip(start, box, spatial))
        dst = tuple(slice(sl.start - a, sl.stop - a) for sl, a in zip(src, start))
        if any(sl.stop <= sl.start for sl in src):
            continue
        out[(k, slice(0, c), *dst)] = inputs[(n, slice(None), *src)]
        if mask:
            out[(k, c, *dst)] = labels[(n, *src)] == table.ids[r]
    if box != tuple(size):
        out = resize(out, size)
    return out


def resize(batch: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Resize ``(B, C, *spatial)`` to ``size`` (area averaging when shrinking)."""
    t = torch.from_numpy(np.ascontiguousarray(batch))
    shrink = all(s <= b for s, b in zip(size, batch.shape[2:]))
    mode = "area" if shrink else ("bilinear" if len(size) == 2 else "trilinear")
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(t, size=tuple(size), mode=mode, **kwargs).numpy()


def paint_classes(labels: np.ndarray, ids: np.ndarray, values: np.ndarray, dtype=None) -> np.ndarray:
    """A new label image where each object id takes ``values[k]`` of its ``ids[k]`` (others 0)."""
    ids = np.asarray(ids, dtype=np.int64)
    values = np.asarray(values)
    order = np.argsort(ids)
    ids, values = ids[order], values[order]
    flat = np.asarray(labels).ravel().astype(np.int64, copy=False)
    pos = np.clip(np.searchsorted(ids, flat), 0, max(len(ids) - 1, 0))
    hit = (flat > 0) & (ids[pos] == flat) if len(ids) else np.zeros(flat.shape, bool)
    out = np.zeros(flat.shape, dtype=dtype or values.dtype)
    out[hit] = values[pos[hit]]
    return out.reshape(np.shape(labels))


def stratified_split(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hold apart about ``fraction`` of each class (at least one where a class has 3 or more items).

    Returns training and validation positions into ``y``, both sorted.
    """
    y = np.asarray(y)
    val: list[int] = []
    if fraction > 0:
        for c in np.unique(y):
            members = np.flatnonzero(y == c)
            if len(members) < 3:
                continue  # keep scarce classes for training
            k = min(len(members) - 2, max(1, int(round(fraction * len(members)))))
            val.extend(rng.choice(members, k, replace=False).tolist())
    val_idx = np.array(sorted(val), dtype=np.int64)
    return np.setdiff1d(np.arange(len(y)), val_idx), val_idx


class ObjectSampler:
    """Random batches of pre-cut crops with their class, augmented.

    Parameters
    ----------
    crops
        ``(M, C, *(size + 2 * margin))`` crops, cut with a margin for shifts.
    targets
        ``(M,)`` class indices.
    size
        Crop size given to the network (the ``patch``).
    image_channels
        The first channels that are image intensities (gain/offset apply to them,
        not to the mask channel).
    weights
        Relative sampling weight per crop (e.g. to balance classes); uniform if None.
    intensity
        Strength of the intensity change: gain in ``[1/(1+s), 1+s]``, offset ``±s/2``.
    """

    def __init__(self, crops: np.ndarray, targets: np.ndarray, size: tuple[int, ...], rng: np.random.Generator,
                 augment: bool = True, image_channels: int = 1, weights: np.ndarray | None = None,
                 intensity: float = 0.1):
        if len(crops) == 0:
            raise InputError("no annotated items are left for training")
        self.crops, self.targets = crops, np.asarray(targets, dtype=np.int64)
        self.patch = tuple(int(s) for s in size)
        self.margin = [(c - s) for c, s in zip(crops.shape[2:], self.patch)]
        self.rng, self.augment = rng, augment
        self.image_channels, self.intensity = image_channels, float(intensity)
        p = np.ones(len(crops)) if weights is None else np.asarray(weights, dtype=np.float64)
        self.p = p / p.sum()

    def sample(self, batch_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch ``(x (B, C, *patch), y (B,))`` on ``device``."""
        rows = self.rng.choice(len(self.crops), batch_size, p=self.p)
        xs = []
        for r in rows:
            if self.augment:
                start = [int(self.rng.integers(0, m + 1)) for m in self.margin]
            else:
                start = [m // 2 for m in self.margin]
            x = self.crops[(r, slice(None), *(slice(a, a + p) for a, p in zip(start, self.patch)))]
            if self.augment:
                x = self._augment(x)
            xs.append(np.ascontiguousarray(x))
        x = torch.from_numpy(np.stack(xs)).to(device, non_blocking=True)
        y = torch.from_numpy(self.targets[rows]).to(device, non_blocking=True)
        return x, y

    def rng_state(self) -> None:
        return None  # it draws from the loop's stream (a :class:`~.patches.Sampler`)

    def close(self) -> None:
        pass

    def _augment(self, x: np.ndarray) -> np.ndarray:
        """Flips, 90-degree turns in YX (square crops), intensity gain/offset."""
        for axis in range(1, x.ndim):
            if self.rng.random() < 0.5:
                x = np.flip(x, axis)
        if x.shape[-1] == x.shape[-2]:
            x = np.rot90(x, int(self.rng.integers(4)), axes=(x.ndim - 2, x.ndim - 1))
        if self.intensity > 0:
            s = self.intensity
            gain = float(np.exp(self.rng.uniform(-np.log1p(s), np.log1p(s))))
            offset = float(self.rng.uniform(-s / 2, s / 2))
            x = x.copy()
            x[: self.image_channels] = x[: self.image_channels] * gain + offset
        return x
