"""Setting up a training run: one path from what the user gave to the parts the step loop drives.

:func:`set_up` turns the input (an image and its annotations, or a
:class:`~..data.dataset.DataSet`; a :class:`TrainConfig`; maybe a checkpoint to
fine-tune or to resume) into a :class:`~.parts.TrainingSetup`. Nothing here trains.
One path, whatever the input:

1. *the door* (:func:`as_dataset`): an image array is a :class:`~..data.sources.Source`
   like any file, so one image is a data set of one; its axes, size and annotations
   are checked first, in the image's own words;
2. *the holding* (:func:`hold`): the data is held in memory (one image whose pixels
   are in memory or small enough, normalised whole: temporal context, the denoiser's
   focus on bright structures; and the items of several images for an item task,
   stacked by :func:`~..data.stacking.stack_images`) or streamed (read patch by patch
   across the images, each normalised with its own percentiles; batches prepared
   ahead in a background thread, :class:`~..data.sampling.Prefetch`, when they are
   read from files). Both are a :class:`Held`;
3. *the assembly* (:func:`assemble`): the config resolved for the data's size and the
   device (:func:`~..config.resolve`), the task bound to the held data (a
   :class:`~..tasks.base.Problem`), the model, optimiser and scaler, the starting
   checkpoint loaded, and the run bound to its process group (:mod:`.ddp`).

Process-wide settings (threads, the global random streams) are not set here: see
:mod:`..runtime.context`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np

from ..config import TrainConfig, resolve, resume_config
from ..data.axes import Layout, make_layout
from ..data.dataset import DataSet
from ..data.normalize import Normalizer, count_nonfinite
from ..data.sampling import Prefetch
from ..data.stacking import stack_images
from ..data.temporal import check_context, stack_context
from ..errors import ConfigError, InputError
from ..formats.checkpoint import ModelCard, check_checkpoint
from ..models import get_model, model_protocol
from ..runtime.device import resolve_device
from ..tasks import Task, get_task
from ..tasks.base import Problem
from .ddp import attach
from .parts import Start, TrainingSetup, build_model, continue_from
from .resume import RunState, data_fingerprint, dataset_fingerprint, read_run_state

#: Image-like entries of ``extra`` that are laid out and normalised exactly like the image.
IMAGE_EXTRAS = ("target", "reference")
#: One image with up to this many values (pixels x channels) is held in memory; a bigger lazy one is streamed.
IN_MEMORY_VALUES = 64 << 20
PREFETCH = "auto"
"""``"auto"``: prepare batches ahead when some image is read from a file or a lazy array; ``True`` / ``False``."""
DATA_STREAM = 7
"""Second word of the data stream's seed: ``default_rng([seed, DATA_STREAM])``, apart from the loop's stream."""


def set_up(data: Any, annotations: Any, config: TrainConfig | None, *, axes: str | None = None, rgb: bool = False,
           axes_hint: str | None = None, init_checkpoint: dict | None = None, resume: dict | None = None,
           extra: dict | None = None) -> TrainingSetup:
    """Check the input and build the parts of a training run (see :func:`.loop.train` for the parameters)."""
    config, start = _starting_point(config, init_checkpoint, resume)
    task = get_task(config.task)
    if start.resume and axes is None and not isinstance(data, DataSet):
        axes = start.card.axes  # a resumed image keeps the layout it was trained in
    ds, extra = as_dataset(data, annotations, extra, dims=config.spatial_dims or task.default_spatial_dims,
                           axes=axes, rgb=rgb, axes_hint=axes_hint)
    return assemble(hold(ds, config, task, extra), config, start, task)


# ---------------------------------------------------------------- 1. the door


def as_dataset(data: Any, annotations: Any, extra: dict | None, *, dims: int | None, axes: str | None = None,
               rgb: bool = False, axes_hint: str | None = None) -> tuple[DataSet, dict]:
    """``data`` as a data set (an image array: a data set of one) and the extras not carried by its samples.

    An image's ``extra["target"]`` becomes its sample's target; ``classes`` and
    ``reference`` stay extras (only an image held in memory takes them).
    """
    extra = dict(extra or {})
    if isinstance(data, DataSet):
        if annotations is not None:
            raise InputError("a data set carries its own annotations and targets (make_sample(image, labels, "
                             "target=...)); give no separate annotations")
        return data, extra
    layout = make_layout(tuple(np.shape(data)), axes, dims, rgb=rgb, hint=axes_hint)
    if min(layout.spatial_shape) < 4:
        raise InputError(f"the image is too small to train on: spatial size {layout.spatial_shape} (axes {layout.axes})")
    if annotations is not None:
        layout.check_labels_shape(tuple(np.shape(annotations)))
    target = extra.pop("target", None)
    if target is not None:
        check_image_like("target", target, tuple(np.shape(data)))
    return DataSet.single(data, annotations, axes=layout.axes, spatial_dims=layout.spatial_dims, target=target), extra


def check_image_like(name: str, arr: Any, shape: tuple[int, ...]) -> None:
    """An image-like extra (target, reference) covers the image's pixels and holds numbers."""
    if tuple(np.shape(arr)) != shape:
        raise InputError(f"the {name} image has shape {tuple(np.shape(arr))} but the image has {shape}; "
                         f"the {name} must cover the same pixels (same axes, same size)")
    dtype = getattr(arr, "dtype", None)
    dtype = np.asarray(arr).dtype if dtype is None else np.dtype(dtype)
    if dtype.kind not in "biuf":
        raise InputError(f"the {name} image must hold numbers, got dtype {dtype}")


# ---------------------------------------------------------------- 2. the holding


def hold(ds: DataSet, config: TrainConfig, task: Task, extra: dict) -> Held:
    """How the run holds ``ds``: in memory (:class:`InMemory`) or read patch by patch (:class:`Streamed`)."""
    if len(ds) > 1:
        if task.predicts_items:  # crops of every image, cut from one padded stack of them
            image, objects, axes, classes = stack_images(ds, frames="objects" not in task.inputs,
                                                         max_values=IN_MEMORY_VALUES)
            return InMemory(image, objects, axes, dict({"classes": classes}, **extra), ds.spatial_dims)
        if config.temporal_context:
            raise ConfigError("temporal context trains on one time-lapse at a time, not on a set of images; set it "
                              "to 0", field="temporal_context")
        return Streamed(ds, config, task, extra)
    s = ds[0]
    big = s.image.lazy and ds.n_pixels(0) * ds.n_channels > IN_MEMORY_VALUES
    if big and not task.predicts_items and not config.temporal_context:
        return Streamed(ds, config, task, extra)

    def whole(source):
        return None if source is None else source[(slice(None),) * len(source.shape)]

    own = {"target": whole(s.target)} if s.target is not None else {}
    if s.classes is not None:
        own["classes"] = s.classes
    dims = config.spatial_dims or task.default_spatial_dims or ds.spatial_dims
    return InMemory(whole(s.image), whole(s.labels), s.image.axes, dict(own, **extra), dims)


class Held:
    """The training data as a run holds it; :func:`assemble` reads the same attributes of either kind."""

    layout: Layout
    """The image's layout (for several images: the layout most of them share; its axes go into the model file)."""
    spatial_shape: tuple[int, ...]
    """What the config's defaults are resolved for (the image's, or the largest image's, spatial size)."""
    in_channels: int
    normalizer: Normalizer
    inputs: np.ndarray | None = None
    context: int = 0
    dataset: DataSet | None = None
    fingerprint: str = ""
    notices: list[tuple[str, str]]
    problem_level = "warning"
    """How the problem's own notices are shown."""

    def check_model(self, card: ModelCard | None) -> None:
        """The starting model's dimensionality fits the data."""

    def data_rng(self, seed: int | None) -> np.random.Generator | None:
        """A random stream of the data's own (``None``: the loop's stream serves)."""
        return None

    def prepare(self, config: TrainConfig, start: Start, task: Task) -> None:
        """Normalise (``config`` resolved); whatever the task needs made ready beforehand."""

    def bind(self, task: Task, config: TrainConfig, rng: np.random.Generator, divisor: int) -> Problem:
        raise NotImplementedError

    def output_context(self) -> dict[str, Any]:
        """What post-processing needs to map previews back to the image's intensities."""
        return {"intensity_low": self.normalizer.low, "intensity_high": self.normalizer.high,
                "source_dtype": self.dtype.str}

    def started(self, setup: TrainingSetup) -> None:
        """The run is assembled (and bound to its process group)."""


class InMemory(Held):
    """One image (or the stacked items of several) held in memory, normalised whole."""

    def __init__(self, image: Any, annotations: Any, axes: str, extra: dict, dims: int | None):
        self.image = np.asarray(image)
        self.annotations, self.extra, self.dtype = annotations, extra, self.image.dtype
        self.layout = make_layout(self.image.shape, axes, dims)
        self.spatial_shape = self.layout.spatial_shape
        self.notices = []

    def check_model(self, card):
        if card is not None and card.spatial_dims != self.layout.spatial_dims:
            raise ConfigError(f"the model is {card.spatial_dims}D but training would be {self.layout.spatial_dims}D "
                              f"(axes {self.layout.axes}); set the dimensionality to match")

    def prepare(self, config, start, task):
        layout = self.layout
        x = layout.to_canonical(self.image)
        bad = count_nonfinite(x)
        if bad:
            self.notices.append((f"{bad} NaN/inf pixel(s) in the image were set to its low value for training",
                                 "warning"))
        # a resumed run's weights were trained with the checkpoint's values
        self.normalizer = (Normalizer.from_dict(start.card.normalizer) if start.resume
                           else Normalizer(*config.percentiles).fit(x))
        self.context = check_context(config.temporal_context, layout)
        self.inputs = stack_context(self.normalizer.apply(x, refit=False), layout, self.context)
        self.in_channels = self.inputs.shape[1]
        self.labels = _annotations(task, layout, self.annotations)
        self.fingerprint = data_fingerprint(self.image, None if self.annotations is None
                                            else np.asarray(self.annotations))
        if "target" in task.inputs and self.extra.get("target") is None:
            raise InputError(f"task {task.name!r} needs a target image: a clean (or high-SNR) image of the same pixels")
        self.extra = _prepare_extra(self.extra, self.image, layout, self.normalizer, x)

    def bind(self, task, config, rng, divisor):
        return task.make_problem(self.inputs, self.labels, config, rng, divisor, self.extra)


class Streamed(Held):
    """Images read patch by patch, each normalised with its own percentiles (estimated on a subsample)."""

    problem_level = "info"

    def __init__(self, ds: DataSet, config: TrainConfig, task: Task, extra: dict):
        if extra:
            raise InputError(f"{', '.join(extra)}: only an image held in memory takes these, but training reads "
                             f"{len(ds)} image(s) patch by patch; give targets and classes with each sample "
                             "(make_sample)")
        dims = config.spatial_dims or task.default_spatial_dims
        if dims is not None and dims != ds.spatial_dims:
            ds = DataSet(ds.samples, spatial_dims=dims)
        self.dataset = ds
        self.spatial_shape = tuple(max(lay.spatial_shape[d] for lay in ds.layouts) for d in range(ds.spatial_dims))
        axes = Counter(lay.axes for lay in ds.layouts).most_common(1)[0][0]
        self.layout = next(lay for lay in ds.layouts if lay.axes == axes)
        self.in_channels, self.dtype = ds.n_channels, ds[0].image.dtype
        self.notices = [(f"training on {ds.describe()}", "info")]

    def check_model(self, card):
        if card is not None and card.spatial_dims != self.dataset.spatial_dims:
            raise ConfigError(f"the model is {card.spatial_dims}D but the data set is {self.dataset.spatial_dims}D; "
                              "set the dimensionality to match", field="spatial_dims")

    def data_rng(self, seed):
        # the sampler may run a batch ahead of the loop: it draws from a stream of its own, stored with the model
        return np.random.default_rng(None if seed is None else [seed, DATA_STREAM])

    def prepare(self, config, start, task):
        self.normalizer = self.dataset.fit_normalization(config.percentiles)
        self.fingerprint = dataset_fingerprint(self.dataset)

    def bind(self, task, config, rng, divisor):
        return task.make_dataset_problem(self.dataset, config, rng, divisor)

    def started(self, setup):
        ahead = any(s.image.lazy for s in self.dataset.samples) if PREFETCH == "auto" else bool(PREFETCH)
        if ahead:
            setup.problem.sampler = Prefetch(setup.problem.sampler, setup.config.batch_size, setup.device)


# ---------------------------------------------------------------- 3. the assembly


def assemble(held: Held, config: TrainConfig, start: Start, task: Task) -> TrainingSetup:
    """The parts of a run on ``held`` (``config`` validated, not yet resolved)."""
    card = start.card
    held.check_model(card)
    device = resolve_device(config.device)
    rng = np.random.default_rng(config.seed)
    data_rng = held.data_rng(config.seed)
    requested = config
    config = resolve(config, spatial_shape=held.spatial_shape, device=device.type,
                     architecture=card.model_config if card is not None else None)
    held.prepare(config, start, task)
    build = dict(spatial_dims=held.layout.spatial_dims, in_channels=held.in_channels, out_channels=1,
                 **config.model_config)
    # a network built and dropped, as set-up always has: its initialisation draws from the seeded torch stream,
    # so every seeded run's weights depend on it (issue 22 changes no behaviour). Its sizes: the registry entry's.
    get_model(config.model, **build)
    protocol = model_protocol(config.model, **build)
    problem = held.bind(task, config, rng if data_rng is None else data_rng, protocol.size_divisor)
    notices = held.notices + [(message, held.problem_level) for message in problem.notices]
    model, optimizer, scaler = build_model(config, task, problem, problem.in_channels or held.in_channels,
                                           held.layout, card, device)
    setup = TrainingSetup(config, task, device, held.layout, held.normalizer, held.inputs, held.context, problem,
                          model, optimizer, scaler, rng, RunState(), held.fingerprint, held.output_context(), notices,
                          start.resume, dataset=held.dataset, data_rng=data_rng)
    if start.checkpoint is not None:
        continue_from(start, setup, requested, held.spatial_shape)
    attach(setup)  # several processes: each draws its own patches (before any is prepared ahead)
    held.started(setup)
    return setup


def _starting_point(config: TrainConfig | None, init_checkpoint: dict | None,
                    resume: dict | None) -> tuple[TrainConfig, Start]:
    """The configuration (validated; the checkpoint's own when resuming without one) and the start."""
    if resume is not None and init_checkpoint is not None:
        raise ConfigError("give either a checkpoint to resume or one to fine-tune from, not both")
    if resume is not None:
        resume = check_checkpoint(resume)
        read_run_state(resume)  # raises a clear error when the file holds no training state
        card = ModelCard.of(resume)
        config = config or resume_config(card.train_config)
        start = Start(resume, resume=True)
    elif init_checkpoint is not None:
        init_checkpoint = check_checkpoint(init_checkpoint)
        card = ModelCard.of(init_checkpoint)
        config = config or TrainConfig(task=card.task)
        start = Start(init_checkpoint)
    else:
        return (config or TrainConfig()).validate(), Start()
    if config.task != card.task or config.model not in (None, card.model):
        what = "resume" if start.resume else "fine-tune"
        raise ConfigError(f"the checkpoint trained {card.model!r} for task {card.task!r}: it cannot {what} "
                          f"{config.model or 'a model'!r} for {config.task!r}")
    # the model decides its family and dimensionality
    return replace(config, model=card.model, spatial_dims=config.spatial_dims or card.spatial_dims).validate(), start


def _annotations(task: Task, layout: Layout, annotations: Any) -> np.ndarray | None:
    if annotations is not None:
        return layout.labels_to_canonical(np.asarray(annotations))
    if task.needs_annotations:
        raise InputError(f"task {task.name!r} needs annotations: pick or paint a labels layer")
    return None


def _prepare_extra(extra: dict | None, image: np.ndarray, layout: Layout, normalizer: Normalizer,
                   x: np.ndarray) -> dict:
    """Bring image-like extras (a restoration target, a clean reference) to the canonical layout.

    They must have the image's shape; they are normalised with the image's
    percentiles (so a clean copy of the same pixels lands on the same scale) and
    keep NaN where they are not finite. ``invalid`` marks the image's own NaN/inf.
    """
    out = dict(extra or {})
    if count_nonfinite(x):
        out["invalid"] = ~np.isfinite(x)
    for name in IMAGE_EXTRAS:
        if out.get(name) is None:
            continue
        arr = np.asarray(out[name])
        check_image_like(name, arr, image.shape)
        canonical = layout.to_canonical(arr)
        finite = np.isfinite(canonical)
        if not finite.any():
            raise InputError(f"the {name} image has no finite pixel values (all NaN or inf)")
        normed = normalizer.apply(canonical, refit=False)
        normed[~finite] = np.nan
        out[name] = normed
    return out
