"""Training on a data set: many images of different sizes, read patch by patch; resume; pretraining."""

import numpy as np
import pytest
import torch
import zarr

from napari_bioimg.core import TrainConfig, predict_sync, train, train_sync
from napari_bioimg.core import events as E
from napari_bioimg.core.control import Control
from napari_bioimg.core.data.dataset import DataSet, make_sample
from napari_bioimg.core.data.sampling import Prefetch
from napari_bioimg.core.errors import ConfigError, InputError
from napari_bioimg.core.formats.checkpoint import ModelCard, load_checkpoint, save_checkpoint
from napari_bioimg.core.metrics import matching
from napari_bioimg.core.tasks.sets import VAL_PIXELS

FAST = dict(model_config={"depth": 2, "base_channels": 16}, batch_size=4, patch_size=48, steps_per_epoch=10,
            learning_rate=5e-3, preview_every=0, time_limit=None)
TINY = dict(model_config={"depth": 2, "base_channels": 8}, batch_size=2, patch_size=32, steps_per_epoch=3,
            learning_rate=5e-3, preview_every=0, time_limit=None, epochs=4)


def blobs(shape, n, seed, gain=1.0):
    """Round objects (apart from each other) on a noisy background and their instance labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint16)
    centres: list[tuple[int, int]] = []
    for _ in range(50 * n):
        cy, cx = int(rng.integers(9, shape[0] - 9)), int(rng.integers(9, shape[1] - 9))
        if all((cy - a) ** 2 + (cx - b) ** 2 > 17**2 for a, b in centres):
            centres.append((cy, cx))
            labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 49] = len(centres)
        if len(centres) == n:
            break
    image = gain * ((labels > 0) * 200.0 + rng.normal(50, 20, shape))
    return image.astype(np.float32), labels


def blob_set(n=5, gain=False):
    """``n`` images of different sizes (and exposures with ``gain``)."""
    return [blobs((80 + 12 * i, 120 - 8 * i), 7, i, gain=1.0 + i if gain else 1.0) for i in range(n)]


def zarr_set(tmp_path, pairs, chunk=32):
    samples = []
    for i, (img, lbl) in enumerate(pairs):
        paths = []
        for name, arr in ((f"im{i}.zarr", img), (f"im{i}_masks.zarr", lbl)):
            z = zarr.create_array(store=str(tmp_path / name), shape=arr.shape, chunks=(chunk, chunk), dtype=arr.dtype)
            z[:] = arr
            paths.append(tmp_path / name)
        samples.append(make_sample(*paths))
    return DataSet(samples)


def run_until(data, config, stop_at=None, **kwargs):
    control = Control()
    gen = train(data, None, config, control=control, preview_index=None, **kwargs)
    steps, notices = [], []
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            return stop.value, steps, notices
        if isinstance(ev, E.StepDone):
            steps.append(ev)
            if stop_at is not None and ev.step == stop_at:
                control.stop()
        elif isinstance(ev, E.Notice):
            notices.append(ev.message)


def test_instance_on_images_of_different_sizes_and_exposures_transfers_to_an_unseen_image():
    pairs = blob_set(5, gain=True)
    ds = DataSet([make_sample(img, lbl, name=f"im{i}") for i, (img, lbl) in enumerate(pairs)])
    res, steps, notices = run_until(ds, TrainConfig(task="instance", epochs=8, **FAST))
    assert steps[-1].step == 80 and "f1@0.5" in res.metrics
    assert any("validation on 1 whole image" in m for m in notices)  # 5 annotated images: one held out whole
    card = ModelCard.of(res.checkpoint)
    assert card.normalizer["mode"] == "per_image"  # prediction normalises each image with its own percentiles
    assert res.checkpoint["training"]["data"].startswith("5 image(s) (5 annotated), 2D")
    image, labels = blobs((110, 90), 7, 99, gain=7.0)  # another size and exposure
    assert matching(labels, predict_sync(res.checkpoint, image))["thresholds"]["0.5"]["f1"] > 0.7


def test_a_lazy_zarr_set_trains_with_batches_prepared_ahead(tmp_path, monkeypatch):
    made = []
    original = Prefetch.__init__

    def spy(self, *args, **kwargs):
        made.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Prefetch, "__init__", spy)
    ds = zarr_set(tmp_path, blob_set(3))
    res, steps, _ = run_until(ds, TrainConfig(task="instance", **TINY))
    assert len(made) == 1 and made[0]._pool._shutdown  # prepared ahead, and its thread stopped at the end
    assert len(steps) == 12 and np.isfinite(res.metrics["f1@0.5"])


@pytest.mark.parametrize("stop_at", [6, 7])  # at an epoch boundary (validation step) and mid-epoch
def test_resumed_set_run_matches_uninterrupted_with_prefetch(tmp_path, stop_at):
    """The sampler runs a batch ahead in its thread: the checkpoint keeps its stream as of the batches used."""
    ds = zarr_set(tmp_path, blob_set(3))
    config = TrainConfig(task="instance", **TINY)
    full, full_steps, _ = run_until(ds, config)
    first, _, _ = run_until(ds, config, stop_at=stop_at)
    assert first.stopped_early and first.steps == stop_at
    path = save_checkpoint(first.checkpoint, tmp_path / "half.pt")
    torch.manual_seed(1234)
    resumed, resumed_steps, notices = run_until(ds, None, resume=load_checkpoint(path))
    assert not any("differ" in m for m in notices)
    assert [s.step for s in resumed_steps] == list(range(stop_at + 1, 13))
    assert [s.loss for s in resumed_steps] == pytest.approx([s.loss for s in full_steps[stop_at:]], rel=1e-5,
                                                            abs=1e-7)
    last = resumed.checkpoint.get("last_state_dict") or resumed.checkpoint["state_dict"]
    full_last = full.checkpoint.get("last_state_dict") or full.checkpoint["state_dict"]
    for k in last:
        torch.testing.assert_close(last[k], full_last[k], rtol=1e-5, atol=1e-6)


def test_resume_on_another_set_says_so(tmp_path):
    (a, b) = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    first, _, _ = run_until(zarr_set(a, blob_set(3)), TrainConfig(task="instance", **TINY), stop_at=3)
    _, _, notices = run_until(zarr_set(b, blob_set(4)), None, resume=first.checkpoint)
    assert any("differ from the checkpoint" in m for m in notices)


def test_one_image_data_set_trains_as_the_image_itself():
    image, labels = blobs((96, 96), 7, 0)
    config = TrainConfig(task="instance", **TINY)
    a, a_steps, _ = run_until(DataSet.single(image, labels), config)
    b = train_sync(image, labels, config, preview_index=None)
    assert [s.loss for s in a_steps] == pytest.approx([h["loss"] for h in b.history])


def test_validation_of_big_held_out_images_is_capped_around_their_annotations():
    tile_img, tile_lbl = blobs((100, 100), 7, 3)
    big_img = np.tile(tile_img, (14, 13))  # 1400 x 1300
    big_lbl = np.block([[np.where(tile_lbl > 0, tile_lbl + 7 * (13 * r + c), 0) for c in range(13)]
                        for r in range(14)]).astype(np.uint16)
    big_lbl[:, :600] = 0  # annotated on the right only
    pairs = blob_set(3) + [(big_img, big_lbl)]
    samples = [make_sample(img, lbl, name=f"im{i}", split="val" if i == 3 else "auto")
               for i, (img, lbl) in enumerate(pairs)]
    seen = []
    config = TrainConfig(task="instance", **dict(TINY, epochs=1))
    train_sync(DataSet(samples), None, config, preview_index=None, callback=seen.append)
    started = next(e for e in seen if isinstance(e, E.TrainingStarted))
    assert 0.5 * VAL_PIXELS[2] <= started.n_val_pixels <= VAL_PIXELS[2]  # not all of the 1.8 M pixels
    val = next(e for e in seen if isinstance(e, E.ValidationDone))
    # cut where the annotations are densest: the crop holds 511 of the 686 annotated objects (one at the
    # image's centre would hold 400, one at its corner fewer: the left 600 columns are not annotated)
    assert val.unit == "objects" and val.size > 460


def test_unannotated_images_serve_self_supervised_tasks_and_are_skipped_by_supervised_ones():
    pairs = blob_set(4)
    ds = DataSet([make_sample(img, lbl if i < 2 else None, name=f"im{i}") for i, (img, lbl) in enumerate(pairs)])
    _, _, notices = run_until(ds, TrainConfig(task="instance", **dict(TINY, epochs=1)))
    assert any("not trained on: " in m and "im2 (no annotations)" in m for m in notices)
    res, _, notices = run_until(ds, TrainConfig(task="denoise", **dict(TINY, epochs=1)))
    assert not any("not trained on" in m for m in notices) and "blind_spot_loss" in res.metrics


def test_restore_learns_from_pairs_of_a_set():
    rng = np.random.default_rng(0)
    samples = [make_sample(img + rng.normal(0, 40, img.shape).astype(np.float32), target=img, name=f"im{i}")
               for i, (img, _) in enumerate(blob_set(4))]
    samples.append(make_sample(blobs((70, 70), 4, 9)[0], name="no target"))
    res, _, notices = run_until(DataSet(samples), TrainConfig(task="restore", **dict(TINY, epochs=3)))
    assert "psnr" in res.metrics and any("no target (no target image)" in m for m in notices)


def test_tasks_that_need_one_image_say_so():
    ds = DataSet([make_sample(img, lbl, name=f"im{i}") for i, (img, lbl) in enumerate(blob_set(2))])
    with pytest.raises(ConfigError, match="temporal context"):
        run_until(ds, TrainConfig(task="denoise", temporal_context=1, **TINY))
    with pytest.raises(InputError, match="no image has annotated objects"):
        run_until(DataSet([make_sample(img, name=f"im{i}") for i, (img, _) in enumerate(blob_set(2))]),
                  TrainConfig(task="instance", **TINY))


def test_pretraining_carries_all_but_the_output_layer_and_is_not_repeated_on_resume():
    pairs = blob_set(4)
    ds = DataSet([make_sample(img, lbl if i == 0 else None, name=f"im{i}") for i, (img, lbl) in enumerate(pairs)])
    config = TrainConfig(task="instance", pretrain_steps=5, **dict(TINY, epochs=1))
    res, steps, notices = run_until(ds, config, stop_at=None)
    phases = [s.phase for s in steps]
    assert phases == ["pretrain"] * 5 + ["train"] * 3
    info = res.checkpoint["training"]["pretrain"]
    assert info["steps"] == 5 and info["images"] == 4 and info["method"] == "blind-spot"
    n = len(res.checkpoint["state_dict"])
    assert info["tensors"] == n - 2  # the output convolution's weight and bias have other shapes
    more, steps, notices = run_until(ds, TrainConfig(**dict(config.to_dict(), epochs=2)), resume=res.checkpoint)
    assert all(s.phase == "train" for s in steps) and any("pretraining is skipped" in m for m in notices)


def test_pretraining_one_image_in_memory():
    image, labels = blobs((96, 96), 7, 0)
    seen = []
    res = train_sync(image, labels, TrainConfig(task="instance", pretrain_steps=3, **dict(TINY, epochs=1)),
                     preview_index=None, callback=seen.append)
    assert [e.phase for e in seen if isinstance(e, E.StepDone)] == ["pretrain"] * 3 + ["train"] * 3
    assert res.checkpoint["training"]["pretrain"]["images"] == 1


def test_previews_of_a_set_show_one_image():
    pairs = blob_set(3)
    ds = DataSet([make_sample(img, lbl, name=f"im{i}") for i, (img, lbl) in enumerate(pairs)])
    seen = []
    train_sync(ds, None, TrainConfig(task="instance", **dict(TINY, epochs=1, preview_every=1e-6)), preview_index=(2, 0),
               callback=seen.append)
    previews = [e for e in seen if isinstance(e, E.PreviewReady)]
    assert previews and previews[0].index == (2, 0) and previews[0].data.shape == pairs[2][0].shape


def test_classification_learns_objects_of_several_images_of_different_sizes():
    from napari_bioimg.core.data.annotations import as_class_annotations
    from tests.conftest import make_objects2d

    sets = [make_objects2d(seed, shape) for seed, shape in ((0, (100, 140)), (1, (120, 100)), (2, (80, 160)))]

    def annotate(truth, per_class=3):
        picked = {}
        for i, c in truth.items():
            if sum(v == c for v in picked.values()) < per_class:
                picked[i] = c
        return as_class_annotations(picked)

    ds = DataSet([make_sample(img, lbl, classes=annotate(truth), name=f"im{i}")
                  for i, (img, lbl, truth) in enumerate(sets)])
    config = TrainConfig(task="classify", model="cnn", model_config={"depth": 3, "base_channels": 8}, batch_size=16,
                         steps_per_epoch=12, epochs=4, time_limit=None, learning_rate=3e-3, preview_every=0)
    seen = []
    res = train_sync(ds, None, config, preview_index=None, callback=seen.append)
    started = next(e for e in seen if isinstance(e, E.TrainingStarted))
    assert started.unit == "objects" and started.n_train_pixels + started.n_val_pixels == 27  # 3 x 3 per image
    image, labels, truth = make_objects2d(7, (110, 120))  # another image
    pred = predict_sync(res.checkpoint, image, labels=labels)
    got = dict(zip(pred.ids.tolist(), pred.classes))
    assert np.mean([got[i] == truth[i] for i in truth]) > 0.75  # chance is 1/3
    too_big = DataSet([make_sample(np.zeros((9000, 9000), np.float32), np.ones((9000, 9000), np.uint8),
                                   classes={1: "a"}, name="huge"), make_sample(sets[0][0], sets[0][1], name="small")])
    with pytest.raises(InputError, match="classification across images holds them in memory"):
        train_sync(too_big, None, config)
