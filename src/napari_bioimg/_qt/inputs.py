"""From the form and the viewer's layers to a :class:`~.session.Run`: what a Train or Predict click runs on.

Everything that can be checked without reading pixels is checked here, before any layer
is added: a missing layer, a bad setting (the engine's own message), a class source
without classes. Layer data is handed over as a private copy of an in-memory array or as
the lazy array itself (read later, in the worker): nothing is computed on the GUI thread.
"""

from __future__ import annotations

from . import classes as C
from . import layers as L
from .session import Job, Run, Sample


def _error(message: str):
    from ..core import InputError

    return InputError(message)


def _sample(image, annotations=None, classes=None, extra=None, reference=None) -> Sample:
    extra = {k: v for k, v in (extra or {}).items() if v is not None}
    if reference is not None:
        extra["reference"] = L.snapshot(reference)
    return Sample(image_key=L.layer_key(image), image_name=image.name, image=L.layer_data(image),
                  shape=L.data_shape(image), rgb=bool(image.rgb), annotations=annotations, classes=classes,
                  extra=extra, reference_key=L.layer_key(reference) if reference is not None else None,
                  reference_name=reference.name if reference is not None else None)


def training_run(form, viewer, model=None, fine_tune: bool = False, listed=None):
    """``(run, config)`` for Train (or Continue, ``fine_tune``, on the current ``model``).

    ``listed``: the *Training data* list (:class:`~.datalist.TrainingData`); when it holds
    pairs, the run trains on all of them instead of the picked image.
    Raises the engine's :class:`InputError` / :class:`ConfigError` with a message for the user.
    """
    card = model.card if fine_tune else None
    if card is not None and form.task.value != card.task:
        form.task.value = card.task  # the model decides the task
    task = form.task_info
    if listed is not None and listed.pairs:
        return _listed_run(form, listed, task, card, fine_tune)
    image = form.image.value
    if image is None:
        raise _error("open or pick an image layer first (File > Open Sample > napari-bioimg has examples)")
    inputs = task.inputs
    ann_layer = form.annotations.value if ("labels" in inputs or "objects" in inputs) else None
    if task.needs_annotations and ann_layer is None and ("labels" in inputs or "objects" in inputs):
        what = ("the objects to classify (a Labels layer of the image's shape)" if "objects" in inputs else
                "a Labels layer of the image's shape with a few strokes per class (0 = not annotated)"
                if task.name == "semantic" else "a Labels layer of the image's shape with the objects' masks")
        raise _error(f"pick {what} under {form.annotations.label}")
    config = form.config(card)
    classes = None
    if "classes" in inputs:
        classes = C.class_request(form.classes.value, ann_layer, image, per_frame="objects" not in inputs)
    extra = {}
    if "target" in inputs:
        if form.target.value is None:
            raise _error("pick a Target: a clean (or high-SNR) image of the same pixels and shape")
        extra["target"] = L.snapshot(form.target.value)
    reference = form.reference.value if task.output_kind == "image" else None
    # a snapshot: the user may paint on while training runs; lazy layers are read in the worker
    annotations = L.snapshot(ann_layer) if ann_layer is not None else None
    axes = form.axes.value
    spatial_dims = card.spatial_dims if card is not None else (config.spatial_dims or (3 if "Z" in axes else 2))
    config.spatial_dims = spatial_dims
    preview = None
    if config.preview_every:
        here = L.data_index(image, viewer)[: len(axes.replace("C", ""))]
        preview = L.batch_index(axes, spatial_dims, here)
    sample = _sample(image, annotations, classes, extra, reference)
    run = Run(job=Job.TRAIN, task=task.name, model=config.model, label=task.result_label or config.model,
              output_kind=task.output_kind, axes=axes, spatial_dims=spatial_dims, samples=[sample],
              objects=annotations if "objects" in inputs else None, fine_tune=fine_tune, preview_index=preview,
              select=L.layer_key(ann_layer) if ann_layer is not None else None)
    return run, config


def _listed_run(form, listed, task, card, fine_tune: bool):
    """Train on every pair of the Training data list (a data set: images of different sizes)."""
    if task.direct_model or "target" in task.inputs:
        raise _error(f"'{form.task_label}' trains on the picked image; clear the Training data list (Remove) to "
                     "use it")
    samples = listed.samples()
    if task.needs_annotations and not any(s.annotations is not None for s in samples):
        raise _error("no pair of the Training data list has annotations: add pairs with a Labels layer")
    config = form.config(card)
    axes = samples[0].axes or form.axes.value
    spatial_dims = card.spatial_dims if card is not None else (config.spatial_dims or (3 if "Z" in axes else 2))
    config.spatial_dims = spatial_dims
    config.preview_every = 0.0  # the images are predicted one by one when training ends
    run = Run(job=Job.TRAIN, task=task.name, model=config.model, label=task.result_label or config.model,
              output_kind=task.output_kind, axes=axes, spatial_dims=spatial_dims, samples=samples,
              fine_tune=fine_tune)
    return run, config


def several_images(viewer, listed) -> list:
    """What Predict several predicts: the image layers selected in the layer list (two or more), else the
    listed images of the Training data list."""
    from napari.layers import Image

    selected = [layer for layer in viewer.layers.selection if isinstance(layer, Image) and not L.is_ours(layer)]
    layers = selected if len(selected) > 1 else listed.image_layers()
    if not layers:
        raise _error("select several image layers in the layer list (Ctrl/Shift-click), or list them under "
                     "Training data, then Predict several")
    return sorted(layers, key=lambda layer: list(viewer.layers).index(layer))


def prediction_runs(form, viewer, model, layers) -> tuple[Run, dict]:
    """``(run, options)`` predicting each of ``layers`` into its own result layer, in one worker."""
    task, card = model.task, model.card
    if task.direct_model:
        raise _error("classification predicts one image with its objects at a time: pick it and Predict")
    parts = []
    for image in layers:
        axes = L.axes_choices(image)[0]
        if card.spatial_dims == 2 and "Z" in axes and image.ndim == 3 and not image.rgb:
            axes = "ZYX"
        parts.append(Run(job=Job.PREDICT, task=task.name, model=card.model, label=task.result_label or card.model,
                         output_kind=task.output_kind, axes=axes, spatial_dims=card.spatial_dims,
                         samples=[_sample(image)]))
    run = Run(job=Job.PREDICT, task=task.name, model=card.model, label=parts[0].label, output_kind=task.output_kind,
              axes=parts[0].axes, spatial_dims=card.spatial_dims, samples=[p.sample for p in parts], parts=parts)
    return run, {"device": form.device.value}


def prediction_run(form, viewer, model, after=None) -> tuple[Run, dict]:
    """``(run, predict options)`` for Predict with ``model``; ``after`` a training run: its image and inputs."""
    task = model.task
    card = model.card
    if after is not None:
        image = L.find_layer(viewer, after.sample.image_key)
        axes, objects = after.axes, after.objects
        reference = L.find_layer(viewer, after.sample.reference_key) if after.sample.reference_key else None
    else:
        image = form.image.value
        if image is None:
            raise _error("pick an image layer to predict")
        axes = form.axes.value
        objects = None
        if "objects" in task.inputs:
            if form.annotations.value is None:
                raise _error("pick the objects to classify (a Labels layer of the image's shape)")
            objects = L.snapshot(form.annotations.value)
        reference = form.reference.value if form.uses("reference") else None
    if image is None:
        raise _error("the image was closed")
    if card.spatial_dims == 2 and "Z" in axes and image.ndim == 3 and not image.rgb:
        axes = "ZYX"
    sample = _sample(image, reference=reference)
    label = task.result_label or card.model
    run = Run(job=Job.PREDICT, task=task.name, model=card.model, label=label, output_kind=task.output_kind,
              axes=axes, spatial_dims=card.spatial_dims, samples=[sample], objects=objects,
              select=after.select if after is not None else None)
    options = {"device": form.device.value}
    if task.direct_model:
        options.update(labels=objects, class_image=objects is None)
    return run, options
