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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..settings.defaults import PERCENTILES, VAL_FRACTION
from .annotations import ClassAnnotations, as_class_annotations
from .axes import Layout, make_layout, spatial_dims_for
from .holdout import HeldOut, Split, listed, split_dataset
from .labelstats import LabelStats, scan_labels, whole_numbers
from .normalize import MAX_PERCENTILE_SAMPLES, Normalizer
from .sources import Source, label_layout, read_region, subsample

if TYPE_CHECKING:
    from .sampling import DataSetSampler
    from .targets import Targets

SPLITS = ("auto", "train", "val")
__all__ = ["SPLITS", "DataSet", "HeldOut", "LabelStats", "Sample", "Split", "make_sample"]


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
            raise InputError(f"image names must be unique in a data set; repeated: {listed(dup)}")
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
            detail = "; ".join(f"{c} channel(s): {listed(n)}" for c, n in sorted(groups.items()))
            raise InputError(f"the images must have the same number of channels; {detail} "
                             "(check the axes, or train one model per channel count)")
        tiny = [f"{s.name} {lay.spatial_shape}" for s, lay in zip(samples, self.layouts) if min(lay.spatial_shape) < 4]
        if tiny:
            raise InputError(f"image(s) too small to train on (a spatial side under 4 pixels): {listed(tiny)}")
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
            raise InputError(f"mixed 2D and 3D images: {listed(d3)} have a Z axis, {listed(d2)} do not; "
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

    def fit_normalization(self, percentiles: tuple[float, float] = PERCENTILES, mode: str = "per_image",
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
        return whole_numbers(read_region(s.labels, label_layout(self.layouts[i]), plane, box)[0], s.labels.name)

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

    def split(self, val_fraction: float = VAL_FRACTION, *, needs: str = "labels", max_region_pixels: int | None = None,
              whole: bool = True, max_regions: int | None = None) -> Split:
        """Hold out whole images when there are enough, else whole planes, else regions
        (:func:`~.holdout.split_dataset`: the parameters and rules)."""
        return split_dataset(self, val_fraction, needs=needs, max_region_pixels=max_region_pixels, whole=whole,
                             max_regions=max_regions)


    # ------------------------------------------------------------------ sampling

    def sampler(self, patch: tuple[int, ...], targets: Targets, rng: np.random.Generator, *,
                split: Split | None = None, **options: Any) -> DataSetSampler:
        """A :class:`~.sampling.DataSetSampler` of training batches (see its options)."""
        from .sampling import DataSetSampler

        return DataSetSampler(self, patch, targets, rng, split=split, **options)


def _normalize(raw: np.ndarray, ranges: tuple[list[float], list[float]], keep_nan: bool) -> np.ndarray:
    """``(C, *box)`` -> float32 with the image's percentiles, as :meth:`Normalizer.apply`."""
    out = Normalizer().apply(raw[None], ranges=ranges)[0]
    if keep_nan and raw.dtype.kind == "f":
        out[~np.isfinite(raw)] = np.nan
    return out
