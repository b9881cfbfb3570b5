import numpy as np
import pytest

from napari_bioimg.core.errors import InputError
from napari_bioimg.core.metrics import (
    classification_scores,
    iou_matrix,
    matching,
    matching_stack,
    semantic_scores,
)


def test_perfect_match():
    t = np.zeros((20, 20), int)
    t[2:8, 2:8] = 1
    t[10:15, 10:18] = 7
    m = matching(t, t)
    for v in m["thresholds"].values():
        assert v["f1"] == 1.0 and v["ap"] == 1.0 and v["tp"] == 2


def test_partial_match_counts_by_threshold():
    t = np.zeros((10, 10), int)
    t[0:4, 0:4] = 1  # 16 px
    p = np.zeros((10, 10), int)
    p[0:4, 0:3] = 5  # IoU 12/16 = 0.75
    p[8:10, 8:10] = 6  # false positive
    m = matching(t, p)
    assert m["thresholds"]["0.7"]["tp"] == 1 and m["thresholds"]["0.7"]["fp"] == 1
    assert m["thresholds"]["0.8"]["tp"] == 0 and m["thresholds"]["0.8"]["fn"] == 1
    assert m["thresholds"]["0.5"]["f1"] == pytest.approx(2 / 3)
    assert m["thresholds"]["0.5"]["ap"] == pytest.approx(1 / 2)


def test_iou_matrix_and_stack():
    t = np.array([[1, 1, 0, 2]])
    p = np.array([[3, 0, 0, 4]])
    iou = iou_matrix(t, p)
    assert iou.shape == (2, 2)
    assert iou[0, 0] == pytest.approx(0.5) and iou[1, 1] == 1.0
    s = matching_stack([t, t], [p, p])
    assert s["n_true"] == 4 and s["thresholds"]["0.5"]["tp"] == 2


def test_empty_prediction():
    t = np.zeros((5, 5), int)
    t[1:3, 1:3] = 1
    m = matching(t, np.zeros_like(t))
    assert m["thresholds"]["0.5"]["f1"] == 0.0 and m["thresholds"]["0.5"]["fn"] == 1


def test_semantic_scores_ignore_zero():
    truth = np.array([0, 1, 1, 2, 2, 0])
    pred = np.array([2, 1, 2, 2, 2, 1])
    s = semantic_scores(truth, pred)
    assert s["accuracy"] == pytest.approx(0.75)
    assert s["per_class"]["1"]["iou"] == pytest.approx(0.5)
    assert s["per_class"]["2"]["iou"] == pytest.approx(2 / 3)
    with pytest.raises(InputError):
        semantic_scores(np.zeros(3, int), np.zeros(3, int))


def test_classification_scores_by_hand():
    truth = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    s = classification_scores(truth, pred)
    assert s["classes"] == ["a", "b", "c"] and s["n"] == 6
    assert s["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]  # rows truth, columns prediction
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["per_class"]["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "f1": pytest.approx(0.8),
                                   "support": 3}
    assert s["per_class"]["b"]["precision"] == pytest.approx(0.5) and s["per_class"]["c"]["recall"] == 1.0
    assert s["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_classification_scores_edge_cases():
    s = classification_scores([1, 1], [2, 2], classes=[1, 2, 3])
    assert s["accuracy"] == 0 and s["per_class"]["2"]["precision"] == 0 and s["per_class"]["3"]["support"] == 0
    assert s["balanced_accuracy"] == 0  # only classes present in the truth count
    with pytest.raises(InputError, match="not among"):
        classification_scores(["a"], ["z"], classes=["a"])
    with pytest.raises(InputError, match="nothing to score"):
        classification_scores([], [])
