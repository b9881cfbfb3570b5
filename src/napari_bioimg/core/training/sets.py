"""Setting up a training run on a data set: many images of different sizes, read patch by patch.

The images are normalised one by one with their own percentiles (estimated on a
subsample, :meth:`DataSet.fit_normalization`; the rule goes into the model file, so
prediction normalises every image the same way), the task is bound to the set
(``task.make_dataset_problem``: a :class:`~..data.sampling.DataSetSampler` over the
training parts, validation crops of the held-out parts), and batches are prepared
one step ahead in a background thread (:class:`~..data.sampling.Prefetch`) when the
images are read from files, so reading overlaps the optimiser step.

The sampler draws from its own random stream (``data_rng``): it may run a batch
ahead of the loop, and a checkpoint stores its state as of the batches trained on,
so a resumed run continues exactly.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..config import TrainConfig, resolve
from ..data.dataset import DataSet
from ..data.sampling import Prefetch
from ..errors import ConfigError
from ..models import get_model
from ..runtime.device import resolve_device
from ..tasks import Task
from .ddp import attach
from .parts import Start, TrainingSetup, build_model, continue_from
from .resume import RunState, dataset_fingerprint

PREFETCH = "auto"
"""``"auto"``: prepare batches ahead when some image is read from a file or a lazy array; ``True`` / ``False``."""
DATA_STREAM = 7
"""Second word of the data stream's seed: ``default_rng([seed, DATA_STREAM])``, apart from the loop's stream."""


def set_up_dataset(ds: DataSet, config: TrainConfig, start: Start, task: Task) -> TrainingSetup:
    """The parts of a run on ``ds`` (``config`` validated, not yet resolved)."""
    card = start.card
    dims = config.spatial_dims or task.default_spatial_dims
    if dims is not None and dims != ds.spatial_dims:
        ds = DataSet(ds.samples, spatial_dims=dims)
    if card is not None and card.spatial_dims != ds.spatial_dims:
        raise ConfigError(f"the model is {card.spatial_dims}D but the data set is {ds.spatial_dims}D; set the "
                          "dimensionality to match", field="spatial_dims")
    device = resolve_device(config.device)
    rng = np.random.default_rng(config.seed)
    data_rng = np.random.default_rng(None if config.seed is None else [config.seed, DATA_STREAM])
    largest = tuple(max(lay.spatial_shape[d] for lay in ds.layouts) for d in range(ds.spatial_dims))
    requested = config
    config = resolve(config, spatial_shape=largest, device=device.type,
                     architecture=card.model_config if card is not None else None)
    normalizer = ds.fit_normalization(config.percentiles)
    probe = get_model(config.model, spatial_dims=ds.spatial_dims, in_channels=ds.n_channels, out_channels=1,
                      **config.model_config)
    problem = task.make_dataset_problem(ds, config, data_rng, getattr(probe, "size_divisor", 1))
    notices = [(f"training on {ds.describe()}", "info")]
    notices += [(message, "info") for message in problem.notices]
    layout = _common_layout(ds)
    in_channels = problem.in_channels or ds.n_channels
    model, optimizer, scaler = build_model(config, task, problem, in_channels, layout, card, device)
    output_context = {"intensity_low": normalizer.low, "intensity_high": normalizer.high,
                      "source_dtype": ds[0].image.dtype.str}
    setup = TrainingSetup(config, task, device, layout, normalizer, None, 0, problem, model, optimizer, scaler, rng,
                          RunState(), dataset_fingerprint(ds), output_context, notices, start.resume, dataset=ds,
                          data_rng=data_rng)
    if start.checkpoint is not None:
        continue_from(start, setup, requested, largest)
    attach(setup)  # several processes: each draws its own patches (before any is prepared ahead)
    if _prefetch(ds):
        problem.sampler = Prefetch(problem.sampler, config.batch_size, device)
    return setup


def _common_layout(ds: DataSet):
    """The layout most images share: its axes go into the model file (prediction's default)."""
    axes = Counter(lay.axes for lay in ds.layouts).most_common(1)[0][0]
    return next(lay for lay in ds.layouts if lay.axes == axes)


def _prefetch(ds: DataSet) -> bool:
    if PREFETCH != "auto":
        return bool(PREFETCH)
    return any(s.image.lazy for s in ds.samples)
