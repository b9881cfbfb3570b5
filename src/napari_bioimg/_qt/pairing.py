"""Which annotation layer belongs to which image, by name: ``X`` with ``X labels``, ``X_mask``, ``X-annotations``...

The data sets' naming rules (:mod:`napari_bioimg.core.data.pairing`) applied to layer names.
The form uses them so that its *Annotations* picker follows the *Image* picker, and asks
before training one image on the annotations named for another; the *Training data* list
uses them to add matching pairs. Names only: nothing here reads pixels. Main thread only.
"""

from __future__ import annotations

from . import layers as L


def stem(name: str) -> str:
    """A layer name compared the way the data sets compare file stems: case and spaces aside."""
    return name.strip().lower().replace(" ", "_")


def named_for(labels) -> str | None:
    """The image name (as a :func:`stem`) that an annotation layer's name says it belongs to, if it says one."""
    from ..core.data.pairing import LABEL_SUFFIXES, strip_role

    return strip_role(stem(labels.name), LABEL_SUFFIXES) or None


def partner(image, candidates) -> object | None:
    """The annotation layer among ``candidates`` named for ``image`` (``X labels`` for ``X``), if there is one."""
    if image is None:
        return None
    own = stem(image.name)
    return next((c for c in candidates if c is not None and not isinstance(c, str) and named_for(c) == own), None)


def other_owner(viewer, image, labels) -> str | None:
    """The name of *another* open image that ``labels`` is named for (``nuclei`` for ``nuclei labels`` while
    ``image`` is ``slice 34``); ``None`` when the names agree or say nothing."""
    from napari.layers import Image

    if image is None or labels is None or isinstance(labels, str):
        return None
    base = named_for(labels)
    if base is None or base == stem(image.name):
        return None
    owner = next((layer for layer in viewer.layers if isinstance(layer, Image) and not L.is_ours(layer)
                  and stem(layer.name) == base), None)
    return owner.name if owner is not None else None


def mismatch_message(image, labels, owner: str) -> str:
    """The words for a pair whose names do not match."""
    return (f"'{labels.name}' is named for the image '{owner}', not '{image.name}': a model trained on it would "
            f"learn another image's masks. Pick (or paint) the annotations of '{image.name}' under Annotations")


def suitable(viewer, image, choices) -> list:
    """The annotation layers among ``choices`` that may go with ``image``: none named for another open image."""
    return [c for c in choices if c is not None and not other_owner(viewer, image, c)]


def own_first(image, ranked: list) -> list:
    """``ranked`` with the image's own annotations (``X labels`` for ``X``) first."""
    own = partner(image, ranked)
    return ranked if own is None else [own] + [c for c in ranked if not L.same_layer(c, own)]


def follow_image(form) -> None:
    """A new image: Annotations follow it (its own ``X labels``), never keep another image's annotations."""
    image, current = form.image.value, form.annotations.value
    if not form.uses("annotations") or current is None:
        return
    own = partner(image, form.annotations.choices)
    if not L.same_layer(current, own) and (own is not None or other_owner(form.viewer, image, current)):
        with form._quiet():
            form.annotations.value = None
        form._pick_annotations()
