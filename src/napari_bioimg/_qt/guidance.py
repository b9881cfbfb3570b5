"""What the user should do next, in one sentence, from what the form has picked."""

from __future__ import annotations

#: The tasks in a microscopist's words (the CLI and config keep the short names), with what each one does.
TASKS = {
    "instance": ("Segment objects",
                 "Separate touching objects (nuclei, cells) into one label each. Needs dense masks of a few "
                 "objects: each object painted with its own id, 0 = background."),
    "semantic": ("Segment by scribbles (classes)",
                 "A class for every pixel (e.g. background / cell / membrane) from a few painted strokes: "
                 "class 1, 2, ...; 0 = not annotated."),
    "denoise": ("Denoise (self-supervised)",
                "Remove noise using only the noisy image itself (Noise2Void / N2V2): nothing to annotate. "
                "An optional clean reference scores the result."),
    "restore": ("Restore (with a clean target)",
                "Learn to turn the image into a clean (or high-SNR) acquisition of the same pixels (CARE-style): "
                "needs that target image."),
    "reconstruct": ("Reconstruct (autoencoder)",
                    "Rebuild the image through a bottleneck (an autoencoder): learns compact features; "
                    "nothing to annotate."),
    "classify": ("Classify objects",
                 "A class for every object of a Labels layer, learnt from a few examples: points with a 'class' "
                 "feature on some objects, painted class ids, or a 'class' column in the objects' features."),
    "classify-image": ("Classify frames",
                       "A class for every frame of a stack, learnt from points with a 'class' feature on a few "
                       "frames."),
}


def model_words(card) -> str:
    """A model in the user's words: "unet (2D) to segment objects", not the engine's task name."""
    if card.foreign:
        return card.summary()
    dims = "3D" if card.spatial_dims == 3 else "2D"
    return f"{card.model} ({dims}) to {TASKS.get(card.task, (card.task, ''))[0].lower()}"


def next_step(form, model=None) -> str:
    """The next step, from what is picked (never asks for what is already there)."""
    f, task = form, form.task_info
    image, ann = f.image.value, f.annotations.value
    if image is None:
        return "Open an image (File ▸ Open, or File ▸ Open Sample ▸ napari-bioimg), then pick it as Image."
    if f.uses("annotations") and ann is None:
        if task.wants_scribbles:
            masks = [c.name for c in f.annotations.choices if c is not None and f.instance_looking(c)]
            hint = (f" ('{masks[0]}' looks like instance masks: those are for Segment objects.)" if masks else "")
            return ("Add a Labels layer and paint a few strokes per class (label 1, 2, …; 0 = not annotated), "
                    f"then Train.{hint}")
        if "objects" in task.inputs:
            return "Pick the Labels layer of the objects to classify under Objects."
        return "Pick (or paint) a Labels layer of the image's shape with the objects' masks under Annotations."
    marks = ""
    if f.uses("classes"):
        from .marking import class_counts, describe

        counts = class_counts(f.classes.value, ann) if f.classes.value is not None else {}
        what = "objects" if "objects" in task.inputs else "frames"
        if counts is not None and len(counts) < 2:
            so_far = f" So far: {describe(counts, what)}." if counts else ""
            return (f"Give a few {what} a class: pick a Class, press Mark objects and click {what} in the image; "
                    f"then the next class (at least two classes).{so_far}")
        marks = f" ({describe(counts, what)})" if counts else ""
    if f.uses("target") and f.target.value is None:
        return "Pick a Target: a clean (or high-SNR) image of the same pixels."
    if f.uses("annotations") and ann is not None:
        from .pairing import mismatch_message, other_owner

        owner = other_owner(f.viewer, image, ann)
        if owner is not None:
            return f"Check the annotations: {mismatch_message(image, ann, owner)} (Train asks first)."
    source = f" from '{ann.name}'" if f.uses("annotations") and ann is not None else ""
    ready = f"Ready: Train to {f.task_label.lower()} in '{image.name}'{source}{marks}."
    if model is not None:
        ready += f" Predict uses the current model ({model_words(model.card)})."
    return ready


def doubt(form, viewer, run, listed) -> tuple | None:
    """``(key, warning)`` when Train should ask first: the picked annotations are named for another image, or a
    scribbles task got instance-looking masks; ``None`` when nothing is in doubt. ``key`` identifies what the
    user confirms by pressing Train again."""
    from . import layers as L
    from .pairing import mismatch_message, other_owner

    layer = form.annotations.value if form.uses("annotations") else None
    if layer is None:
        return None
    key = (L.layer_key(layer), run.task)
    owner = other_owner(viewer, form.image.value, layer) if not listed.pairs else None
    if owner is not None:
        return key, (f"{mismatch_message(form.image.value, layer, owner)}, or press Train again to train on "
                     f"'{layer.name}' anyway.")
    stats = form.instance_looking(layer) if form.task_info.wants_scribbles else None  # the run's task
    if stats is None:
        return None
    n, covered = stats
    return key, (f"'{layer.name}' looks like instance masks ({n} ids over {covered:.0%} of the image), not "
                 f"scribbles: scribbles training would learn {n} 'classes' of single objects. Paint a few strokes "
                 "per class in a new Labels layer (1 = background, 2 = cells, …), or press Train again to train "
                 f"on '{layer.name}' anyway.")
