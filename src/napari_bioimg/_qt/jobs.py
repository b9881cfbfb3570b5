"""What the dock widget's workers run: the engine's generators, after reading layer data in the worker.

The GUI thread hands over layer data as it is: a private copy of an in-memory array
(cheap), or a lazy dask / zarr array, which is read here, off the GUI thread, so the
viewer never waits for a big image to be computed. No Qt, no napari layers here.

Every job runs under :func:`abortable`: when the window closes, the session sets its
abort event and the job's thread ends within about one network layer's time, not at
the end of a 3D training step or preview that can take longer than 10 s on a CPU.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class Aborted(BaseException):
    """Raised in an aborted job's thread from inside torch (a BaseException: no ``except Exception`` swallows it)."""


@dataclass(frozen=True)
class Received:
    """A message sent to a running training (:meth:`.session.Session.send`) has reached its worker."""

    message: Any


@dataclass(frozen=True)
class ImageResult:
    """Predicting several images: image ``index`` is done (its result goes into its own layer)."""

    index: int
    result: Any


@dataclass(frozen=True)
class CopyProgress:
    """Saving a result store: ``done`` of ``total`` chunks copied."""

    done: int
    total: int


@contextmanager
def abortable(abort: threading.Event | None) -> Iterator[None]:
    """While active, torch work in this thread raises :class:`Aborted` soon after ``abort`` is set.

    The engine checks its stop flag between steps and tile batches only. Here a process-wide
    module forward pre-hook (filtered to this thread) checks the flag before every layer, and
    saved-tensor hooks check it while the backward pass unpacks each layer's saved tensors.
    Every job also runs :func:`behind_the_viewer`.
    """
    with behind_the_viewer():
        if abort is None:
            yield
        else:
            with _abort_hooks(abort):
                yield


WORKER_NICENESS = 10
"""How much lower than the viewer's a job's CPU priority is (Unix niceness steps)."""


@contextmanager
def behind_the_viewer() -> Iterator[None]:
    """Run this worker thread (and the torch threads it starts) at a lower CPU priority than the viewer.

    On a machine without a GPU the viewer draws with the CPU too, and training's threads took
    the cores from it: the window stalled up to 60-80 ms per frame while training on 2 cores.
    A lower priority only matters when the cores are contended: an idle viewer leaves training
    all of them. The priority is put back at the end where the system allows it; where it does
    not (an unprivileged process may not raise a priority again), the thread keeps it until
    napari's thread pool retires it (30 s idle).
    """
    tid = threading.get_native_id()
    try:
        before = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, before + WORKER_NICENESS))
    except (AttributeError, OSError):  # Windows, or not allowed: the job runs as it is
        before = None
    try:
        yield
    finally:
        if before is not None:
            try:
                os.setpriority(os.PRIO_PROCESS, tid, before)
            except OSError:
                pass


@contextmanager
def _abort_hooks(abort: threading.Event) -> Iterator[None]:
    import torch

    me = threading.get_ident()

    def check() -> None:
        if abort.is_set() and threading.get_ident() == me:
            raise Aborted

    def before_layer(module, args) -> None:
        check()

    def unpack(tensor):
        check()
        return tensor

    handle = torch.nn.modules.module.register_module_forward_pre_hook(before_layer)
    try:
        with torch.autograd.graph.saved_tensors_hooks(lambda tensor: tensor, unpack):
            yield
    finally:
        handle.remove()


def _read(data):
    return None if data is None else np.asarray(data)


def _drain(inbox: queue.SimpleQueue | None) -> list:
    messages = []
    while inbox is not None:
        try:
            messages.append(inbox.get_nowait())
        except queue.Empty:
            break
    return messages


def train_job(samples: list, config, *, axes: str, control, inbox: queue.SimpleQueue | None = None,
              abort: threading.Event | None = None, preview_index=None, init_checkpoint=None, live: bool = False
              ) -> Generator[Any, None, Any]:
    """:func:`~napari_bioimg.core.train` on the run's samples, read here in the worker.

    ``samples`` are :class:`.session.Sample` objects: one image (and its annotations,
    target, classes), or several (a training data list: layers or files, each with its
    own size, axes and split), which the engine trains on as a data set.
    With ``live`` (one image) the engine's live mode (:func:`~napari_bioimg.core.live.train_live`)
    reads ``inbox`` itself (annotation edits, the view); otherwise messages put in ``inbox``
    are delivered between engine events and acknowledged with :class:`Received`.
    Returns the engine's ``TrainResult``, or ``None`` when aborted.
    """
    from ..core.training.loop import train

    with abortable(abort):
        try:
            if len(samples) > 1 or samples[0].split != "auto" or isinstance(samples[0].image, (str, Path)):
                gen = train(_data_set(samples, axes, config), None, config, control=control,
                            preview_index=preview_index, init_checkpoint=init_checkpoint)
            else:
                (sample,) = samples
                annotations = _read(sample.annotations)
                extra = {name: _read(value) for name, value in sample.extra.items() if value is not None}
                if sample.classes is not None:
                    extra["classes"] = sample.classes(annotations)
                if live:  # the engine takes the inbox: edits and the view reach it between steps
                    from ..core.live import train_live

                    return (yield from train_live(_read(sample.image), annotations, config, inbox=inbox,
                                                  control=control, preview_index=preview_index, axes=axes,
                                                  rgb=sample.rgb, extra=extra or None))
                gen = train(_read(sample.image), annotations, config, extra=extra or None, axes=axes,
                            control=control, preview_index=preview_index, rgb=sample.rgb,
                            init_checkpoint=init_checkpoint)
            while True:
                try:
                    event = next(gen)
                except StopIteration as done:
                    return done.value
                yield event
                for message in _drain(inbox):
                    yield Received(message)
        except Aborted:
            return None


def _data_set(samples: list, axes: str, config):
    """The samples of a training data list as the engine's data set (layer data or files, read lazily)."""
    from ..core.data.dataset import DataSet, make_sample

    made = []
    for s in samples:
        classes = s.classes(_read(s.annotations)) if s.classes is not None else None
        made.append(make_sample(s.image, s.annotations, target=s.extra.get("target"), classes=classes,
                                axes=None if isinstance(s.image, (str, Path)) else (s.axes or axes),
                                name=s.image_name, split=s.split, rgb=s.rgb))
    return DataSet(made, spatial_dims=config.spatial_dims)


def predict_many_job(model, samples: list, axes: list, *, control, abort: threading.Event | None = None,
                     **kwargs) -> Generator[Any, None, Any]:
    """:func:`~napari_bioimg.core.predict` on several images in turn: one progress across all of them.

    Yields the engine's events, its progress rescaled to images (``stage="images"``), and an
    :class:`ImageResult` as each image is done; Stop ends the current image and skips the rest.
    Returns ``(number done, None)``, or ``None`` when aborted.
    """
    from ..core.events import PredictProgress
    from ..core.inference.predict import predict
    from ..core.inference.source import PredictSource

    n = len(samples)
    with abortable(abort):
        try:
            done = 0
            for k, (sample, image_axes) in enumerate(zip(samples, axes)):
                if control.stop_requested:
                    break
                gen = predict(model, PredictSource(sample.image, image_axes, rgb=sample.rgb), control=control, **kwargs)
                while True:
                    try:
                        ev = next(gen)
                    except StopIteration as end:
                        result = end.value
                        break
                    if isinstance(ev, PredictProgress):
                        part = ev.done / max(ev.total, 1)
                        ev = PredictProgress(int(1000 * (k + part)), 1000 * n, "images", ev.elapsed)
                    yield ev
                if result is None:  # stopped during this image
                    break
                done += 1
                yield ImageResult(k, result)
                yield PredictProgress(1000 * (k + 1), 1000 * n, "images")
            return done, None
        except Aborted:
            return None


def predict_job(model, sample, *, axes: str, control, abort: threading.Event | None = None,
                reference=None, labels=None, diameter=None, **kwargs) -> Generator[Any, None, Any]:
    """:func:`~napari_bioimg.core.predict` on one sample; also scores an image result against a clean ``reference``.

    ``labels`` (the objects to classify) and ``diameter`` (of the objects, in pixels) go with the image; the
    other keywords to ``predict`` (``device``, ``class_image``).
    Returns ``(result, scores)``: ``scores`` holds PSNR/SSIM of the result and of the input
    against the reference (``None`` without a reference or when stopped); ``None`` when aborted.
    """
    from ..core.inference.predict import predict
    from ..core.inference.source import PredictSource
    from ..core.metrics import image_scores

    with abortable(abort):
        try:
            image = PredictSource(sample.image, axes, rgb=sample.rgb, diameter=diameter, labels=labels)
            result = yield from predict(model, image, control=control, **kwargs)
            if result is None or reference is None:
                return result, None
            reference = _read(reference)
            axes_ref = axes if axes and not axes.startswith("Z") else None  # SSIM frame by frame along T/S only
            scores = image_scores(result, reference, axes_ref)
            before = image_scores(np.asarray(sample.image, dtype=np.float32), reference, axes_ref)
            return result, {**scores, "input_psnr": before["psnr"], "input_ssim": before["ssim"]}
        except Aborted:
            return None


def embed_job(image, labels, config, *, abort: threading.Event | None = None, **kwargs
              ) -> Generator[Any, None, Any]:
    """:func:`~napari_bioimg.core.analysis.embed_objects` on layer data read here, in the worker (*Explore
    objects*); returns the embedding, or ``None`` when stopped or aborted."""
    from ..core.analysis import embed_objects

    with abortable(abort):
        try:
            return (yield from embed_objects(_read(image), _read(labels), config, **kwargs))
        except Aborted:
            return None


def explain_job(image, labels, model, *, abort: threading.Event | None = None, **kwargs
                ) -> Generator[Any, None, Any]:
    """:func:`~napari_bioimg.core.analysis.explain_objects` on layer data read here, in the worker (*Explore
    objects*); returns the explanation, or ``None`` when stopped or aborted."""
    from ..core.analysis import explain_objects

    with abortable(abort):
        try:
            return (yield from explain_objects(model, _read(image), _read(labels), **kwargs))
        except Aborted:
            return None


def export_job(checkpoint, fmt: str, path, *, sample=None, sample_axes=None, abort=None):
    """:func:`~napari_bioimg.core.formats.export.export_model` (a plain function: no progress)."""
    from ..core.formats.export import export_model

    with abortable(abort):
        try:
            return export_model(checkpoint, fmt, path, sample=sample, sample_axes=sample_axes)
        except Aborted:
            return None


def save_store_job(source, path: Path, axes: str, scale=None, *, abort: threading.Event | None = None
                   ) -> Generator[CopyProgress, None, Path | None]:
    """Copy a zarr result store to ``path`` as OME-Zarr (chunk by chunk), renamed into place when complete."""
    from ..core.data.zarrio import create_output
    from ..core.inference.blocks import ResultStore

    with ResultStore(path) as store:  # a partial copy is removed when stopped or failed
        out = create_output(store.tmp, source.shape, source.chunks, source.dtype, axes, scale)
        grid = [range(0, s, c) for s, c in zip(source.shape, source.chunks)]
        corners = list(np.ndindex(*[len(g) for g in grid]))
        for i, corner in enumerate(corners):
            if abort is not None and abort.is_set():
                return None
            sel = tuple(slice(g[k], g[k] + c) for g, k, c in zip(grid, corner, source.chunks))
            out[sel] = source[sel]
            yield CopyProgress(i + 1, len(corners))
        store.commit()
    return store.final
