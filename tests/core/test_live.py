"""Live-session pieces of the engine: uncertainty, where to annotate next, edits, growing classes."""

import numpy as np
import pytest
import torch

from napari_bioimg.core.live.edits import AnnotationEdit, EditHistory, merge_boxes
from napari_bioimg.core.live.grow import grow_classes
from napari_bioimg.core.live.suggest import suggest_regions
from napari_bioimg.core.live.uncertainty import entropy_map, margin_map, object_confidence
from napari_bioimg.core.models import get_model


def test_uncertainty_maps_are_zero_when_certain_and_one_when_tied():
    probs = np.zeros((3, 4, 4), np.float32)
    probs[0] = 1
    probs[:, 0, 0] = 1 / 3
    probs[:2, 1, 1] = 0.5
    probs[2, 1, 1] = 0
    h = entropy_map(probs)
    assert h[0, 0] == pytest.approx(1, abs=1e-5) and h[3, 3] == pytest.approx(0, abs=1e-5)
    m = margin_map(probs)
    assert m[1, 1] == pytest.approx(1) and m[3, 3] == pytest.approx(0)


def test_object_confidence_is_the_mean_top_probability_inside():
    labels = np.zeros((4, 4), np.uint16)
    labels[:2, :2] = 1
    labels[2:, 2:] = 7
    probs = np.full((2, 4, 4), 0.5, np.float32)
    probs[0, :2, :2] = 0.9
    probs[1, :2, :2] = 0.1
    conf = object_confidence(labels, probs)
    assert conf == {1: pytest.approx(0.9), 7: pytest.approx(0.5)}


def test_suggestions_are_uncertain_unannotated_and_apart():
    u = np.zeros((200, 200), np.float32)
    u[20:60, 20:60] = 1.0  # very uncertain, but the user painted there
    u[120:160, 30:70] = 0.8
    u[100:140, 140:180] = 0.6
    annotated = np.zeros_like(u, bool)
    annotated[30:50, 30:50] = True
    regions = suggest_regions(u, annotated, size=40, n=3)
    centres = [r.centre for r in regions]
    assert np.allclose(centres[0], (139.5, 49.5), atol=1) and np.allclose(centres[1], (119.5, 159.5), atol=1)
    assert regions[0].score > regions[1].score > regions[2].score
    for a in regions:
        for b in regions:
            if a is not b:
                assert any(sa.stop <= sb.start or sb.stop <= sa.start for sa, sb in zip(a.box, b.box))
    regions3d = suggest_regions(np.random.default_rng(0).random((8, 40, 40)), size=(4, 16, 16), n=2)
    assert len(regions3d) == 2 and all(len(r.box) == 3 for r in regions3d)


def test_recent_edits_are_sampled_more_but_old_annotations_replay():
    rng = np.random.default_rng(0)
    annotated = np.zeros((1, 100, 100), bool)
    annotated[0, 10:20, 10:20] = True  # old annotations
    annotated[0, 80:90, 80:90] = True  # the new stroke
    history = EditHistory(recent_share=0.5)
    history.add(0, (slice(80, 90), slice(80, 90)))
    picks = [history.pick(rng, annotated) for _ in range(400)]
    recent = [p for p in picks if p is not None]
    assert 150 < len(recent) < 250  # about half from the recent edit, the rest left to replay
    assert all(80 <= c[0] < 90 and 80 <= c[1] < 90 for _, c in recent)
    annotated[0, 80:90, 80:90] = False  # the stroke was erased: nothing left to sample there
    assert all(history.pick(rng, annotated) is None for _ in range(50))
    assert merge_boxes([(slice(2, 5), slice(0, 3)), (slice(0, 4), slice(2, 9))]) == (slice(0, 5), slice(0, 9))
    with pytest.raises(ValueError):
        AnnotationEdit((slice(0, 2), slice(0, 2)), np.zeros((3, 3)))


@pytest.mark.parametrize("name, dims", [("unet", 2), ("unet", 3), ("cnn", 2)])
def test_growing_classes_keeps_the_learned_outputs(name, dims):
    torch.manual_seed(0)
    model = get_model(name, spatial_dims=dims, in_channels=1, out_channels=2).eval()
    x = torch.randn(1, 1, *([16] * dims))
    before = model(x)
    assert grow_classes(model, 3) and not grow_classes(model, 3)
    after = model(x)
    assert after.shape[1] == 3
    torch.testing.assert_close(after[:, :2], before)
    assert torch.softmax(after, 1)[:, 2].max() < torch.softmax(after, 1)[:, :2].max()


def test_the_weight_average_follows_a_grown_output_row_for_row():
    import torch

    from napari_bioimg.core.live.average import WeightAverage
    from napari_bioimg.core.live.grow import remap_classes

    model = torch.nn.Sequential()
    model.head = torch.nn.Conv2d(4, 2, 1)
    avg = WeightAverage(model, decay=0.9)
    for _ in range(30):
        with torch.no_grad():
            model.head.weight.add_(1.0)
        avg.update(model)
    old = avg.state["head.weight"].clone()
    assert torch.all(old < model.head.weight)  # it lags behind the weights
    remap_classes(model, ["a", "b"], ["b", "c", "a"])
    avg.regrow(model, [(0, 1), (2, 0)], ("head.weight", "head.bias"))
    grown = avg.state["head.weight"]
    assert grown.shape[0] == 3 and torch.equal(grown[0], old[1]) and torch.equal(grown[2], old[0])
    assert torch.equal(grown[1], model.head.weight[1].detach())  # the new class starts from its own weights
    assert avg.updates == 0  # and follows them closely at first


def test_classes_are_picked_in_turn_whatever_their_pixel_counts():
    from napari_bioimg.core.live.edits import ClassCentres

    labels = np.zeros((1, 64, 64), np.uint8)
    labels[0, :, :40] = 1  # a broad class
    labels[0, 10, 50:53] = 2  # three pixels
    rng = np.random.default_rng(0)
    centres = ClassCentres(labels, rng)
    picked = [labels[(s, *c)] for s, c in (centres.pick(rng) for _ in range(400))]
    share = np.mean(np.array(picked) == 2)
    assert 0.4 < share < 0.6, share


def test_the_referee_hands_over_when_the_network_predicts_new_strokes_better():
    from napari_bioimg.core.live.quick import Referee

    ref = Referee(min_pixels=20)
    new = np.full((5, 5), 2)
    ref.score(new, np.full((5, 5), 2), np.full((5, 5), 1))  # the pixel classifier was right, the network not
    assert not ref.network_wins()
    for _ in range(8):
        ref.score(new, np.full((5, 5), 1), np.full((5, 5), 2))
    assert ref.network_wins()


def test_a_batch_without_a_painted_pixel_teaches_nothing_instead_of_failing():
    """Live: patches around held-apart strokes only (all ignored) must not make the loss NaN and end the session."""
    import torch

    from napari_bioimg.core.data.patches import IGNORE
    from napari_bioimg.core.tasks import get_task

    task = get_task("semantic")
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    loss = task.loss(logits, torch.full((2, 8, 8), IGNORE, dtype=torch.long), {"class_weights": [1.0, 1.0, 1.0]})
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.all(logits.grad == 0)
