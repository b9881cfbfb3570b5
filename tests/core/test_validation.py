"""Validation scores come with the size of what they were computed on; slivers of cut objects are not objects."""

import numpy as np

from napari_bioimg.core import TrainConfig, train_sync
from napari_bioimg.core import events as E
from napari_bioimg.core.formats.checkpoint import ModelCard
from napari_bioimg.core.metrics import validation_caveat
from napari_bioimg.core.tasks.segmentation import BORDER_FRAGMENT, border_min_size, drop_border_fragments

FAST = dict(model_config={"depth": 2, "base_channels": 8}, batch_size=2, patch_size=32, steps_per_epoch=3,
            epochs=2, time_limit=None, preview_every=0)


def test_validation_events_and_the_model_file_carry_the_size(blobs2d):
    image, labels = blobs2d
    events = []
    res = train_sync(image, labels, TrainConfig(**FAST), callback=events.append)
    vals = [e for e in events if isinstance(e, E.ValidationDone)]
    assert vals and all(e.unit == "objects" and e.size == vals[0].size for e in vals)
    assert 1 <= vals[0].size < 7  # the objects of the held-apart part of 7 blobs
    assert vals[0].caveat is not None and str(vals[0].size) in vals[0].caveat
    card = ModelCard.of(res.checkpoint)
    assert (card.validation_size, card.validation_unit) == (vals[0].size, "objects")
    assert card.validation_caveat == vals[0].caveat and card.describe()["validation"]["size"] == vals[0].size
    semantic = train_sync(image, np.where(labels > 0, 2, 1), TrainConfig(task="semantic", **FAST))
    card = ModelCard.of(semantic.checkpoint)
    assert card.validation_unit == "pixels" and card.validation_size > 100  # annotated pixels held apart


def test_caveats_depend_on_size_and_unit():
    assert validation_caveat(2, "objects") and validation_caveat(50, "objects") is None
    assert validation_caveat(500, "pixels") and validation_caveat(50_000, "pixels") is None
    assert validation_caveat(None, "objects") is None and validation_caveat(3, None) is None


def test_slivers_at_the_edge_are_dropped_whole_objects_kept():
    labels = np.zeros((20, 20), np.uint16)
    labels[0, 5] = 1  # a one-pixel sliver on the edge
    labels[5:15, 5:15] = 2  # a whole object inside
    labels[10:20, 0:3] = 3  # a large part of an object cut by the edge
    meta = {"min_size": 4.0, "median_area": 100.0, "border_fragment": BORDER_FRAGMENT}
    kept = drop_border_fragments(labels, border_min_size(meta))
    assert set(np.unique(kept)) == {0, 2, 3}
    assert border_min_size({"min_size": 4.0, "median_area": 100.0}) == 0  # files made before: predict as they did
    assert drop_border_fragments(labels, 0) is labels
