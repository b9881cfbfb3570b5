"""A data set: many images of different sizes, annotated or not, read lazily.

A :class:`DataSet` is a list of :class:`Sample` (an image, and optionally its
annotations, a target image for restoration or class annotations for its objects).
Images may differ in size and in their non-spatial axes, but share the channel count
and the model's spatial rank (2D or 3D); anything else is refused with a message
naming the files.

Nothing here reads an image whole unless it is small:

* normalisation percentiles are estimated per image on a subsample of chunk-aligned
  windows (:func:`.sources.subsample`), and the rule is kept as a
  :class:`~.normalize.Normalizer` so prediction normalises the same way;
* annotations are scanned once, block by block, into a coarse count of annotated
  pixels per cell (:class:`LabelStats`): it weights images by annotated content,
  centres patches on annotations and places validation slabs without keeping a
  per-pixel mask;
* :meth:`DataSet.sampler` reads only the patches it samples (:mod:`.sampling`).

The one-image API is the one-sample case: :meth:`DataSet.single`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .annotations import ClassAnnotations, as_class_annotations
from .axes import Layout, make_layout, spatial_dims_for
from .normalize import MAX_PERCENTILE_SAMPLES, Normalizer
from .patches import split_validation
from .sources import Source, full_box, label_layout, read_region, subsample

if TYPE_CHECKING:
    from .sampling import DataSetSampler
    from .targets import Targets

SPLITS = ("auto", "train", "val")
MIN_WHOLE = 4
"""With this many annotated images (or planes) whole ones are held out for validation, as
:func:`~.patches.split_validation` does for the planes of one image; fewer give slabs."""
CELL = {2: (16, 16), 3: (4, 16, 16)}
"""Cell of the annotation count grid (grown for huge images so a grid stays under :data:`MAX_CELLS`)."""
MAX_CELLS = 1 << 20
SCAN_BLOCK = {2: (1024, 1024), 3: (32, 256, 256)}
"""Region of annotations read at once while scanning them (memory bound of the scan)."""
MIN_REGION_PIXELS = 20
EXACT_SLAB_PIXELS = 16 << 20
"""Planes up to this size get a pixel-exact validation slab (their annotations are read once more)."""
MAX_LISTED = 5


def _listed(names: Sequence[str]) -> str:
    names = list(names)
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


@dataclass
class Sample:
    """One image of a data set and what comes with it.

    Attributes
    ----------
    image
        The image (:class:`~.sources.Source`).
    labels
        Annotations in the image's layout without its channel axis (scribbles,
        instance masks, or the objects to classify); ``None`` for an unannotated
        image (self-supervised tasks, pretraining, prediction).
    target
        A clean image of the same pixels (restoration; for denoising a reference
        that validation scores against).
    classes
        Class annotations of some objects of ``labels`` (classification).
    name
        Shown in messages and reports (unique within a data set).
    split
        ``"auto"`` (the data set decides), ``"train"`` (never held out) or
        ``"val"`` (held out whole for validation).
    weight
        Relative sampling weight: multiplies the image's automatic share
        (its annotated pixels, see :meth:`DataSet.sampler`); 0 leaves it out of
        training.
    """

    image: Source
    labels: Source | None = None
    target: Source | None = None
    classes: ClassAnnotations | None = None
    name: str = ""
    split: str = "auto"
    weight: float = 1.0

    def __post_init__(self) -> None:
        self.name = self.name or self.image.name
        if self.split not in SPLITS:
            raise InputError(f"{self.name}: split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise InputError(f"{self.name}: weight must be a finite number >= 0, got {self.weight}")

    @property
    def annotated(self) -> bool:
        return self.labels is not None


def make_sample(image: Any, labels: Any = None, *, target: Any = None, classes: Any = None, axes: str | None = None,
                name: str | None = None, split: str = "auto", weight: float = 1.0, rgb: bool = False,
                axes_hint: str | None = None) -> Sample:
    """A :class:`Sample` from paths or arrays (numpy, zarr, dask, a napari layer's data).

    ``labels`` must have the image's shape without its channel axis, ``target``
    the image's shape; nothing is read but the files' headers. ``axes_hint`` is
    what a reader recorded (e.g. tifffile's series axes) when ``axes`` is not given.
    """
    img = image if isinstance(image, Source) else Source(image, axes, name=name, rgb=rgb, hint=axes_hint)
    label_axes = img.axes.replace("C", "")
    lbl = None
    if labels is not None:
        lbl = labels if isinstance(labels, Source) else Source(labels, None, name=_role_name(labels, img, "labels"))
        expected = tuple(s for a, s in zip(img.axes, img.shape) if a != "C")
        if lbl.shape != expected:
            raise InputError(f"{lbl.name}: annotation shape {lbl.shape} does not match the image {img.name} "
                             f"{expected} (axes {label_axes}); they must cover the same pixels")
        lbl.axes = label_axes  # whole numbers are checked while scanning: reading them now would defeat laziness
    tgt = None
    if target is not None:
        tgt = target if isinstance(target, Source) else Source(target, None, name=_role_name(target, img, "target"))
        if tgt.shape != img.shape:
            raise InputError(f"{tgt.name}: the target has shape {tgt.shape} but the image {img.name} has "
                             f"{img.shape}; it must cover the same pixels (same axes, same size)")
        tgt.axes = img.axes
    cls = None if classes is None else as_class_annotations(classes)
    return Sample(img, lbl, tgt, cls, name or img.name, split, float(weight))


def _role_name(data: Any, image: Source, role: str) -> str | None:
    if isinstance(data, (str,)) or hasattr(data, "__fspath__"):
        return None  # the file's own name
    return f"{image.name} ({role})"


@dataclass
class LabelStats:
    """Where an image's annotations are, at cell granularity, and which values they hold.

    Attributes
    ----------
    cell
        Cell size per spatial dim.
    grid
        ``(planes, *cells)`` number of annotated (> 0) pixels per cell.
    values, counts
        Distinct label values (0 included when present) and their pixel counts.
    """

    cell: tuple[int, ...]
    grid: np.ndarray
    values: np.ndarray
    counts: np.ndarray

    @property
    def n_annotated(self) -> int:
        return int(self.grid.sum())

    def plane_counts(self) -> np.ndarray:
        return self.grid.reshape(len(self.grid), -1).sum(axis=1)


def _cell_size(layout: Layout) -> tuple[int, ...]:
    cell = list(CELL[layout.spatial_dims])
    spatial = layout.spatial_shape

    def n_cells() -> int:
        return layout.n_samples * int(np.prod([math.ceil(s / c) for s, c in zip(spatial, cell)]))

    while n_cells() > MAX_CELLS and any(c < s for c, s in zip(cell, spatial)):
        cell = [c * 2 if c < s else c for c, s in zip(cell, spatial)]
    return tuple(cell)


def scan_labels(source: Source, layout: Layout) -> LabelStats:
    """Read annotations block by block: per-cell annotated counts and value histogram.

    Raises :class:`InputError` naming the file for fractional, NaN or negative labels.
    """
    nd = layout.spatial_dims
    spatial = layout.spatial_shape
    cell = _cell_size(layout)
    cells = tuple(math.ceil(s / c) for s, c in zip(spatial, cell))
    grid = np.zeros((layout.n_samples, *cells), dtype=np.int32)  # kept per image: a few % of a uint16 image
    block = tuple(max(c, (b // c) * c) for b, c in zip(SCAN_BLOCK[nd], cell))
    hist = np.zeros(0, dtype=np.int64)
    big: list[tuple[np.ndarray, np.ndarray]] = []
    starts = [range(0, s, b) for s, b in zip(spatial, block)]
    for plane in range(layout.n_samples):
        for corner in np.ndindex(*[len(r) for r in starts]):
            lo = [starts[d][i] for d, i in enumerate(corner)]
            box = tuple(slice(a, min(a + b, s)) for a, b, s in zip(lo, block, spatial))
            lab = _whole_numbers(read_region(source, layout, plane, box)[0], source.name)
            ann = lab > 0
            padded = [math.ceil(n / c) * c for n, c in zip(ann.shape, cell)]
            if tuple(padded) != ann.shape:
                ann = np.pad(ann, [(0, p - s) for p, s in zip(padded, ann.shape)])
            shape = [v for p, c in zip(padded, cell) for v in (p // c, c)]
            counts = ann.reshape(shape).sum(axis=tuple(range(1, 2 * nd, 2)))
            where = tuple(slice(a // c, a // c + n) for a, c, n in zip(lo, cell, counts.shape))
            grid[(plane, *where)] += counts
            top = int(lab.max()) if lab.size else 0
            if top < (1 << 20):
                bc = np.bincount(lab.ravel(), minlength=1)
                if len(bc) > len(hist):
                    hist = np.pad(hist, (0, len(bc) - len(hist)))
                hist[: len(bc)] += bc
            else:
                big.append(np.unique(lab, return_counts=True))
    values = np.flatnonzero(hist).astype(np.int64)
    counts = hist[values]
    if big:
        allv = np.concatenate([values] + [u.astype(np.int64) for u, _ in big])
        allc = np.concatenate([counts] + [c for _, c in big])
        values, inverse = np.unique(allv, return_inverse=True)
        counts = np.bincount(inverse, weights=allc).astype(np.int64)
    return LabelStats(cell, grid, values, counts)


def _whole_numbers(lab: np.ndarray, name: str) -> np.ndarray:
    if lab.dtype.kind == "b":
        return lab.astype(np.uint8)
    if lab.dtype.kind == "f":
        if not np.all(np.isfinite(lab)) or not np.all(lab == np.round(lab)):
            raise InputError(f"{name}: annotations must be whole-number label ids (found fractional or NaN values)")
        lab = lab.astype(np.int64)
    elif lab.dtype.kind not in "iu":
        raise InputError(f"{name}: annotations must be an integer label image, got dtype {lab.dtype}")
    if lab.dtype.kind == "i" and lab.size and lab.min() < 0:
        raise InputError(f"{name}: annotations contain negative ids; label ids must be >= 0 "
                         "(0 = not annotated / background)")
    return lab


@dataclass(frozen=True)
class HeldOut:
    """A validation region: a sample, one of its planes (``None``: all) and a spatial box."""

    sample: int
    plane: int | None
    box: tuple[slice, ...]


@dataclass
class Split:
    """Which parts of a data set are held out for validation.

    ``mode`` says how: ``"images"`` (whole images), ``"planes"`` (whole frames or
    slices of the images), ``"regions"`` (a slab of each annotated plane) or
    ``"none"``. Training never samples a held-out pixel's target.
    """

    mode: str
    held: list[HeldOut] = field(default_factory=list)

    def whole(self, sample: int) -> bool:
        """True when every plane of ``sample`` is held out."""
        return any(h.sample == sample and h.plane is None for h in self.held)

    def boxes(self, sample: int, plane: int) -> list[tuple[slice, ...]]:
        """Held-out boxes inside one plane of a sample that is (partly) trained on."""
        return [h.box for h in self.held if h.sample == sample and h.plane == plane]

    def describe(self, names: Sequence[str]) -> str:
        if self.mode == "none":
            return "no validation"
        if self.mode == "images":
            return f"validation on {len(self.held)} whole image(s): {_listed([names[h.sample] for h in self.held])}"
        what = "plane(s)" if self.mode == "planes" else "region(s)"
        return f"validation on {len(self.held)} {what} of {len({h.sample for h in self.held})} image(s)"


class DataSet:
    """Images of different sizes with their annotations, for training one model.

    Parameters
    ----------
    samples
        The images (:func:`make_sample`). Names must be unique.
    spatial_dims
        2 or 3 for every image; ``None``: 3 when every image has a Z axis, 2 when
        none has (a mix is refused: set 2 to train slice by slice).
    """

    def __init__(self, samples: Sequence[Sample], *, spatial_dims: int | None = None):
        samples = list(samples)
        if not samples:
            raise InputError("the data set is empty: give at least one image")
        for i, s in enumerate(samples):
            if s.name == "image" and s.image.path is None and len(samples) > 1:
                s.name = f"image {i + 1}"  # arrays without names: say which one a message is about
        names = [s.name for s in samples]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InputError(f"image names must be unique in a data set; repeated: {_listed(dup)}")
        self.samples = samples
        self.spatial_dims = self._spatial_dims(spatial_dims)
        self.layouts: list[Layout] = []
        for s in samples:
            try:
                self.layouts.append(make_layout(s.image.shape, s.image.axes, self.spatial_dims))
            except InputError as err:
                raise InputError(f"{s.name}: {err}") from None
        channels = {s.name: lay.n_channels for s, lay in zip(samples, self.layouts)}
        if len(set(channels.values())) > 1:
            groups: dict[int, list[str]] = {}
            for name, c in channels.items():
                groups.setdefault(c, []).append(name)
            detail = "; ".join(f"{c} channel(s): {_listed(n)}" for c, n in sorted(groups.items()))
            raise InputError(f"the images must have the same number of channels; {detail} "
                             "(check the axes, or train one model per channel count)")
        tiny = [f"{s.name} {lay.spatial_shape}" for s, lay in zip(samples, self.layouts) if min(lay.spatial_shape) < 4]
        if tiny:
            raise InputError(f"image(s) too small to train on (a spatial side under 4 pixels): {_listed(tiny)}")
        self._stats: list[LabelStats | None] = [None] * len(samples)
        self._ranges: list[tuple[list[float], list[float]]] | None = None
        self.normalizer: Normalizer | None = None

    def _spatial_dims(self, requested: int | None) -> int:
        if requested is not None:
            if requested not in (2, 3):
                raise InputError(f"spatial_dims must be 2 or 3, got {requested}")
            return requested
        dims = {s.name: spatial_dims_for(s.image.axes) for s in self.samples}
        if len(set(dims.values())) > 1:
            d3 = [f"{s.name} ({s.image.axes})" for s in self.samples if dims[s.name] == 3]
            d2 = [f"{s.name} ({s.image.axes})" for s in self.samples if dims[s.name] == 2]
            raise InputError(f"mixed 2D and 3D images: {_listed(d3)} have a Z axis, {_listed(d2)} do not; "
                             "set the model to 2D to train slice by slice, or use images of one kind")
        return next(iter(dims.values()))

    # ------------------------------------------------------------------ construction

    @classmethod
    def single(cls, image: Any, labels: Any = None, *, axes: str | None = None, spatial_dims: int | None = None,
               rgb: bool = False, axes_hint: str | None = None, name: str = "image", target: Any = None,
               classes: Any = None) -> DataSet:
        """The one-image API as a one-sample data set (its planes may still be frames/slices)."""
        sample = make_sample(image, labels, target=target, classes=classes, axes=axes, name=name, rgb=rgb,
                             axes_hint=axes_hint)
        return cls([sample], spatial_dims=spatial_dims)

    @classmethod
    def from_arrays(cls, images: Sequence[Any], labels: Sequence[Any] | None = None, *,
                    axes: str | Sequence[str | None] | None = None, names: Sequence[str] | None = None,
                    spatial_dims: int | None = None) -> DataSet:
        """Pairs of arrays (e.g. napari layers' data); ``labels[i]`` may be ``None``."""
        n = len(images)
        labels = list(labels) if labels is not None else [None] * n
        if len(labels) != n:
            raise InputError(f"{n} image(s) but {len(labels)} annotation(s); give one per image (None for none)")
        axes_list = list(axes) if isinstance(axes, (list, tuple)) else [axes] * n
        names = list(names) if names is not None else [None] * n  # type: ignore[list-item]
        return cls([make_sample(img, lbl, axes=a, name=nm) for img, lbl, a, nm in zip(images, labels, axes_list, names)],
                   spatial_dims=spatial_dims)

    # ------------------------------------------------------------------ description

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.samples]

    @property
    def n_channels(self) -> int:
        return self.layouts[0].n_channels

    def n_planes(self, i: int) -> int:
        return self.layouts[i].n_samples

    def n_pixels(self, i: int) -> int:
        """Pixels per channel of image ``i`` (all planes)."""
        lay = self.layouts[i]
        return lay.n_samples * int(np.prod(lay.spatial_shape))

    def describe(self) -> str:
        """One line, e.g. ``"12 images (3 annotated), 2D, 1 channel, 41.9 Mpx"``."""
        n_ann = sum(s.annotated for s in self.samples)
        px = sum(self.n_pixels(i) for i in range(len(self))) / 1e6
        return (f"{len(self)} image(s) ({n_ann} annotated), {self.spatial_dims}D, {self.n_channels} channel(s), "
                f"{px:.1f} Mpx")

    # ------------------------------------------------------------------ normalisation

    def fit_normalization(self, percentiles: tuple[float, float] = (1.0, 99.8), mode: str = "per_image",
                          seed: int = 0) -> Normalizer:
        """Estimate each image's percentiles on a subsample and return the rule to store with the model.

        ``"per_image"``: every image is normalised with its own percentiles, and so
        is every image predicted later (the stored rule's ``low``/``high`` are the
        median over the data set, used where one value is needed). ``"fixed"``: one
        pair of percentiles pooled over all images (a subsample of each, equally
        many values per image), used for training and prediction alike.
        """
        rule = Normalizer(float(percentiles[0]), float(percentiles[1]), mode=mode)
        rng = np.random.default_rng(seed)
        n = len(self)
        # per image: one image's values at a time; pooled: a share of the budget per image, so memory stays flat
        budget = MAX_PERCENTILE_SAMPLES if mode == "per_image" else max(20_000, MAX_PERCENTILE_SAMPLES // n)
        ranges, pooled = [], []
        for i, s in enumerate(self.samples):
            v = subsample(s.image, self.layouts[i], budget, rng)
            empty = [c for c, vc in enumerate(v) if vc.size == 0]
            if empty:
                raise InputError(f"{s.name}: channel {empty[0]} has no finite pixel values (all NaN or inf)")
            if mode == "per_image":
                ranges.append(self._percentiles(v, rule))
            else:
                pooled.append([vc.astype(np.float32) for vc in v])
        if mode == "per_image":
            rule.low = [float(np.median([r[0][c] for r in ranges])) for c in range(self.n_channels)]
            rule.high = [float(np.median([r[1][c] for r in ranges])) for c in range(self.n_channels)]
        else:
            rule.low, rule.high = self._percentiles(
                [np.concatenate([v[c] for v in pooled]).astype(np.float64) for c in range(self.n_channels)], rule)
            ranges = [(list(rule.low), list(rule.high))] * n
        self._ranges, self.normalizer = ranges, rule
        return rule

    @staticmethod
    def _percentiles(values: list[np.ndarray], rule: Normalizer) -> tuple[list[float], list[float]]:
        lows, highs = [], []
        for v in values:
            lo, hi = np.percentile(v, [rule.p_low, rule.p_high])
            lows.append(float(lo))
            highs.append(float(hi))
        return lows, highs

    def ranges(self, i: int) -> tuple[list[float], list[float]]:
        """Per-channel ``(low, high)`` that normalise image ``i`` (fitted with defaults on first use)."""
        if self._ranges is None:
            self.fit_normalization()
        assert self._ranges is not None
        return self._ranges[i]

    # ------------------------------------------------------------------ reading

    def read_image(self, i: int, plane: int, box: tuple[slice, ...], *, keep_nan: bool = False) -> np.ndarray:
        """Normalised ``(C, *box)`` float32 of one plane; non-finite pixels become 0 (NaN with ``keep_nan``)."""
        raw = read_region(self.samples[i].image, self.layouts[i], plane, box)
        return _normalize(raw, self.ranges(i), keep_nan)

    def read_labels(self, i: int, plane: int, box: tuple[slice, ...]) -> np.ndarray:
        """Raw annotations ``(*box)`` of one plane (whole-number ids)."""
        s = self.samples[i]
        if s.labels is None:
            raise InputError(f"{s.name} has no annotations")
        return _whole_numbers(read_region(s.labels, label_layout(self.layouts[i]), plane, box)[0], s.labels.name)

    def read_target(self, i: int, plane: int, box: tuple[slice, ...]) -> np.ndarray:
        """The target ``(C, *box)`` normalised with the image's percentiles; NaN where not finite."""
        s = self.samples[i]
        if s.target is None:
            raise InputError(f"{s.name} has no target image")
        return _normalize(read_region(s.target, self.layouts[i], plane, box), self.ranges(i), keep_nan=True)

    # ------------------------------------------------------------------ annotations

    def label_stats(self, i: int) -> LabelStats | None:
        """Annotation statistics of image ``i`` (scanned on first use), ``None`` if it has none."""
        s = self.samples[i]
        if s.labels is None:
            return None
        if self._stats[i] is None:
            self._stats[i] = scan_labels(s.labels, label_layout(self.layouts[i]))
        return self._stats[i]

    def annotated_pixels(self, i: int) -> int:
        stats = self.label_stats(i)
        return 0 if stats is None else stats.n_annotated

    # ------------------------------------------------------------------ validation

    def split(self, val_fraction: float = 0.15, *, needs: str = "labels",
              max_region_pixels: int | None = None) -> Split:
        """Hold out whole images when there are enough, else whole planes, else regions.

        Parameters
        ----------
        val_fraction
            Share of the annotated images (planes, pixels) to hold out.
        needs
            ``"labels"``: only annotated content counts (and is held out);
            ``"image"`` / ``"target"``: every image (with a target) counts
            (self-supervised tasks, restoration).
        max_region_pixels
            Regions mode without annotations: the most pixels held out per plane.

        Images marked ``split="val"`` are always the (only) validation images;
        ``split="train"`` ones are never held out. With :data:`MIN_WHOLE` or more
        usable images, about ``val_fraction`` of them are held out whole (evenly
        spread over the list, at least one, never all); otherwise, with that many
        usable planes (frames, slices), whole planes; otherwise a slab at the far end
        of each plane's longest axis holding about ``val_fraction`` of its annotated
        pixels (cut at the annotation grid's cells), or a corner box without
        annotations.
        """
        usable = [i for i in range(len(self)) if self._usable(i, needs)]
        marked = [i for i, s in enumerate(self.samples) if s.split == "val"]
        if marked:
            if not [i for i in usable if i not in marked]:
                raise InputError("every usable image is marked for validation; mark at least one for training")
            return Split("images", [HeldOut(i, None, full_box(self.layouts[i])) for i in marked])
        if val_fraction <= 0 or not usable:
            return Split("none")
        candidates = [i for i in usable if self.samples[i].split != "train"]
        if len(usable) >= MIN_WHOLE and candidates:
            k = min(max(1, int(round(val_fraction * len(usable)))), len(candidates), len(usable) - 1)
            picks = _spread(candidates, k)
            return Split("images", [HeldOut(i, None, full_box(self.layouts[i])) for i in picks])
        planes = [(i, p) for i in usable for p in range(self.n_planes(i)) if self._plane_usable(i, p, needs)]
        cand_planes = [(i, p) for i, p in planes if i in candidates]
        if len(planes) >= MIN_WHOLE and cand_planes:
            k = min(max(1, int(round(val_fraction * len(planes)))), len(cand_planes), len(planes) - 1)
            return Split("planes", [HeldOut(i, p, full_box(self.layouts[i])) for i, p in _spread(cand_planes, k)])
        held = []
        for i, p in cand_planes:
            box = self._slab(i, p, val_fraction) if needs == "labels" else \
                _corner_box(self.layouts[i].spatial_shape, val_fraction, max_region_pixels)
            if box is not None:
                held.append(HeldOut(i, p, box))
        return Split("regions" if held else "none", held)

    def _usable(self, i: int, needs: str) -> bool:
        s = self.samples[i]
        if needs == "labels":
            return self.annotated_pixels(i) > 0
        if needs == "target":
            return s.target is not None
        return True

    def _plane_usable(self, i: int, p: int, needs: str) -> bool:
        if needs != "labels":
            return True
        stats = self.label_stats(i)
        return stats is not None and bool(stats.grid[p].any())

    def _slab(self, i: int, plane: int, fraction: float) -> tuple[slice, ...] | None:
        """The far end of the longest axis, holding about ``fraction`` of the plane's annotations.

        Planes up to :data:`EXACT_SLAB_PIXELS` are cut exactly as
        :func:`~.patches.split_validation` cuts them; bigger ones at a cell border of
        the annotation grid (their annotations are not read again).
        """
        stats = self.label_stats(i)
        assert stats is not None
        spatial = self.layouts[i].spatial_shape
        if int(np.prod(spatial)) <= EXACT_SLAB_PIXELS:
            annotated = self.read_labels(i, plane, full_box(self.layouts[i])) > 0
            regions = split_validation(annotated[None], fraction)
            return regions[0].box if regions else None
        axis = int(np.argmax(spatial))
        grid = stats.grid[plane]
        marginal = grid.sum(axis=tuple(d for d in range(grid.ndim) if d != axis))
        total = int(marginal.sum())
        if total < MIN_REGION_PIXELS:
            return None
        tail = np.cumsum(marginal[::-1])[::-1]  # annotated pixels from cell j to the end
        ok = [j for j in range(1, len(tail)) if 0 < tail[j] < total]
        if not ok:
            return None
        j = min(ok, key=lambda j: abs(tail[j] - fraction * total))
        box = list(full_box(self.layouts[i]))
        box[axis] = slice(j * stats.cell[axis], spatial[axis])
        return tuple(box)

    # ------------------------------------------------------------------ sampling

    def sampler(self, patch: tuple[int, ...], targets: Targets, rng: np.random.Generator, *,
                split: Split | None = None, **options: Any) -> DataSetSampler:
        """A :class:`~.sampling.DataSetSampler` of training batches (see its options)."""
        from .sampling import DataSetSampler

        return DataSetSampler(self, patch, targets, rng, split=split, **options)


def _spread(items: list, k: int) -> list:
    """``k`` items evenly spread over the list, first and last avoided (as ``split_validation``)."""
    idx = np.unique(np.linspace(0, len(items) - 1, k + 2)[1:-1].round().astype(int))
    return [items[j] for j in idx]


def _corner_box(spatial: tuple[int, ...], fraction: float, max_pixels: int | None) -> tuple[slice, ...] | None:
    """A box in the far corner holding about ``fraction`` of the plane (at most ``max_pixels``, half the plane)."""
    size = int(np.prod(spatial))
    if size < 4096:
        return None
    want = min(fraction * size, 0.5 * size, max_pixels or size)
    sides = [0] * len(spatial)
    remaining = want
    for j, d in enumerate(np.argsort(spatial)):
        side = int(round(remaining ** (1.0 / (len(spatial) - j))))
        sides[d] = int(min(spatial[d], max(8, side)))
        remaining /= sides[d]
    return tuple(slice(s - b, s) for s, b in zip(spatial, sides))


def _normalize(raw: np.ndarray, ranges: tuple[list[float], list[float]], keep_nan: bool) -> np.ndarray:
    """``(C, *box)`` -> float32 with the image's percentiles, as :meth:`Normalizer.apply`."""
    out = Normalizer().apply(raw[None], ranges=ranges)[0]
    if keep_nan and raw.dtype.kind == "f":
        out[~np.isfinite(raw)] = np.nan
    return out
