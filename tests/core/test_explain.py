"""Grad-CAM explanations: shapes and placement, and two checks that the maps point at the evidence.

The objects are discs that differ only by a small spot at a random place inside them (bright in
one class, dark in the other), so the evidence is known. A classifier trained on them must (1) put
its map's peak on the spot far more often than chance and weigh the spot more than the rest of the
object, and (2) lose that when its weights are re-initialised (Adebayo et al. 2018's model
randomisation test): maps that survive randomisation would show the input, not the model.
"""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_bioimg.core import TrainConfig, train_sync
from napari_bioimg.core.analysis import explain_objects_sync, gradcam, randomized_copy, rank_correlation
from napari_bioimg.core.errors import InputError
from napari_bioimg.core.formats.loading import load_model


def spot_objects(n=144, seed=0, spacing=28):
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    shape = (side * spacing, side * spacing)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, 20.0)
    labels = np.zeros(shape, np.uint16)
    spots = np.zeros(shape, bool)
    classes = {}
    for k in range(1, n + 1):
        cy, cx = divmod(k - 1, side)
        cy, cx = cy * spacing + spacing // 2, cx * spacing + spacing // 2
        r = 8 * rng.uniform(0.85, 1.15)
        body = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0, r - 4)
        spot = ((yy - cy - dist * np.sin(angle)) ** 2 + (xx - cx - dist * np.cos(angle)) ** 2 < 2.5**2) & body
        bright = rng.random() < 0.5
        image += rng.uniform(0.8, 1.2) * (100 * body + (80 if bright else -70) * spot)
        labels[body] = k
        spots |= spot
        classes[k] = "bright" if bright else "dark"
    image = rng.poisson(image).astype(np.float32) + rng.normal(0, 4, shape).astype(np.float32)
    return image, labels, spots, classes


@pytest.fixture(scope="module")
def spotted():
    torch.manual_seed(0)
    image, labels, spots, classes = spot_objects()
    annotated = list(range(1, 97))
    cfg = TrainConfig(task="classify", model="cnn", epochs=1, steps_per_epoch=150, time_limit=None, batch_size=32,
                      val_fraction=0, learning_rate=3e-3, preview_every=0, seed=0,
                      model_config={"depth": 4, "base_channels": 8})
    table = {"label_id": annotated, "class": [classes[i] for i in annotated]}
    ckpt = train_sync(image, labels, cfg, extra={"classes": table}).checkpoint
    return image, labels, spots, classes, ckpt


def pointing(result, labels, spots, ids):
    """Share of objects whose map peaks within 2 px of the spot, and the median spot / rest map ratio."""
    boxes = ndi.find_objects(labels)
    hits, ratios = [], []
    for i in ids:
        box = boxes[i - 1]
        obj = labels[box] == i
        spot = spots[box] & obj
        m = result.image[box]
        near = ndi.binary_dilation(spot, iterations=2) & obj
        peak = np.unravel_index(np.argmax(np.where(obj, m, -1)), m.shape)
        hits.append(bool(near[peak]))
        ratios.append(m[spot].mean() / max(m[obj & ~spot].mean(), 1e-6))
    return float(np.mean(hits)), float(np.median(ratios))


def test_maps_point_at_the_deciding_part(spotted):
    image, labels, spots, classes, ckpt = spotted
    before = labels.copy()
    result = explain_objects_sync(ckpt, image, labels)
    assert np.array_equal(labels, before)
    held_out = list(range(97, 145))
    correct = [i for i in held_out if result.classes[i - 1] == classes[i]]
    assert len(correct) >= 0.85 * len(held_out)
    hit_rate, ratio = pointing(result, labels, spots, correct)
    assert hit_rate >= 0.7  # chance (the spot grown by 2 px, over the object) is about 0.3
    assert ratio > 1.1


def test_randomised_weights_destroy_the_maps(spotted):
    image, labels, spots, classes, ckpt = spotted
    loaded = load_model(ckpt, "cpu")
    trained = explain_objects_sync(loaded, image, labels)
    again = explain_objects_sync(load_model(ckpt, "cpu"), image, labels)
    loaded.model = randomized_copy(loaded.model, seed=1)
    random = explain_objects_sync(loaded, image, labels)
    ids = list(range(1, 145))
    inside = labels > 0
    assert rank_correlation(trained.image[inside], again.image[inside]) == pytest.approx(1.0)
    boxes = ndi.find_objects(labels)
    rho = [rank_correlation(trained.image[boxes[i - 1]][labels[boxes[i - 1]] == i],
                            random.image[boxes[i - 1]][labels[boxes[i - 1]] == i]) for i in ids]
    assert np.median(rho) < 0.6
    hit_trained, _ = pointing(trained, labels, spots, ids)
    hit_random, _ = pointing(random, labels, spots, ids)
    assert hit_random < hit_trained - 0.4


def test_explanation_layout_and_scores(spotted):
    image, labels, _, _, ckpt = spotted
    result = explain_objects_sync(ckpt, image, labels, keep_maps=True)
    assert result.image.shape == labels.shape and result.image.dtype == np.float32
    assert 0 <= result.image.min() and result.image.max() <= 1 + 1e-6
    assert np.all(result.image[labels == 0] == 0)  # only on the objects' own pixels
    assert result.maps.shape[0] == len(result.ids) == 144
    assert np.allclose(result.confidence, result.probabilities.max(axis=1))
    assert np.all((0 <= result.margin) & (result.margin <= result.confidence))
    cols = result.columns()
    assert list(cols) == ["label_id", "class_predicted", "confidence", "margin"]


def test_timelapse_maps_go_to_the_frame_of_each_object(spotted):
    image, labels, _, _, ckpt = spotted
    half = labels.shape[0] // 2
    stack = np.stack([image[:half], image[half: 2 * half]])
    lbl = np.stack([labels[:half], labels[half: 2 * half]])
    result = explain_objects_sync(ckpt, stack, lbl, axes="TYX")
    assert result.image.shape == lbl.shape
    assert result.image[0][lbl[0] > 0].max() > 0 and result.image[1][lbl[1] > 0].max() > 0


def test_gradcam_shapes_and_target():
    from napari_bioimg.core import get_model

    net = get_model("resnet", spatial_dims=2, in_channels=2, out_channels=3, depth=3, base_channels=4).eval()
    x = torch.randn(5, 2, 20, 24)
    maps, logits = gradcam(net, x)
    assert maps.shape == (5, 20, 24) and logits.shape == (5, 3)
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1 + 1e-6
    other, _ = gradcam(net, x, target=torch.full((5,), 2), layer=-2)
    assert other.shape == maps.shape
    assert all(p.grad is None for p in net.parameters())  # explaining never leaves gradients behind


def test_needs_a_classify_model(blob_model, blobs2d):
    image, labels = blobs2d
    with pytest.raises(InputError, match="classify"):
        explain_objects_sync(blob_model, image, labels)
