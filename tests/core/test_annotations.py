"""Class annotations from tables, points and painted labels, with warnings for what is skipped."""

import numpy as np
import pytest

from napari_bioimg.core.data.annotations import (
    ClassAnnotations,
    as_class_annotations,
    check_against_objects,
    class_value,
    classes_from_painted,
    classes_from_points,
    classes_from_table,
)
from napari_bioimg.core.errors import InputError


def _labels():
    lbl = np.zeros((20, 20), np.uint16)
    lbl[2:6, 2:6] = 1
    lbl[10:15, 10:15] = 2
    lbl[2:6, 12:18] = 5
    return lbl


def test_class_values():
    assert [class_value(v) for v in (" 3 ", "3.0", 2.0, np.int64(4), "mitotic ", "", "nan", None, float("nan"))] \
        == [3, 3, 2, 4, "mitotic", None, None, None, None]


def test_table_keeps_the_users_names():
    ann = classes_from_table({"label_id": ["1", "2", "5", "9"], "class": ["A", "b", "", "A"]})
    assert ann.classes == {1: "A", 2: "b", 9: "A"} and not ann.warnings
    ints = classes_from_table({"Label": [1, 2], "Class": ["2", "10"]})
    assert ints.classes == {1: 2, 2: 10}
    mixed = classes_from_table({"id": [1, 2], "class": [1, "x"]})
    assert mixed.classes == {1: "1", 2: "x"}


def test_table_problems_are_warnings_or_clear_errors():
    ann = classes_from_table({"label_id": [1, 1, 2, "x", -3], "class": ["a", "b", "a", "a", "a"]})
    assert ann.classes == {2: "a"}
    assert any("different classes" in w for w in ann.warnings)
    assert any("not a whole number" in w for w in ann.warnings)
    with pytest.raises(InputError, match="no class column"):
        classes_from_table({"label_id": [1], "kind": ["a"]})
    with pytest.raises(InputError, match="no object id column"):
        classes_from_table({"name": [1], "class": ["a"]})


class _Frame:
    """Just enough of a DataFrame (napari's features): columns and column access."""

    def __init__(self, d):
        self._d = d
        self.columns = list(d)

    def __getitem__(self, k):
        return self._d[k]


def test_features_table_with_index_column():
    ann = as_class_annotations(_Frame({"index": [1, 2, 5], "class": ["x", None, "y"]}))
    assert ann.classes == {1: "x", 5: "y"}
    assert as_class_annotations({3: "a", 4: "b"}).classes == {3: "a", 4: "b"}
    with pytest.raises(InputError, match="no class annotations"):
        as_class_annotations(None)


def test_points_take_the_object_under_them():
    lbl = _labels()
    pts = np.array([[3.2, 3.4], [12, 12], [0, 0], [25, 3], [4, 14], [5, 16]])
    ann = classes_from_points(lbl, pts, ["a", "b", "a", "a", "a", "b"])
    assert ann.classes == {1: "a", 2: "b"}
    text = " ".join(ann.warnings)
    assert "1 point(s) lie on background" in text and "(0, 0)" in text
    assert "outside" in text and "object(s) 5 carry points of different classes" in text
    assert classes_from_points(lbl, np.zeros((0, 2)), []).classes == {}
    with pytest.raises(InputError, match="coordinates"):
        classes_from_points(lbl, np.zeros((1, 3)), ["a"])


def test_painted_classes_take_the_majority():
    lbl = _labels()
    painted = np.zeros_like(lbl, dtype=np.uint8)
    painted[2:6, 2:4] = 2
    painted[2:3, 4:6] = 3  # minority on object 1
    painted[11, 11] = 1
    painted[19, 19] = 4  # on background
    keep = painted.copy()
    ann = classes_from_painted(lbl, painted)
    assert ann.classes == {1: 2, 2: 1}
    assert any("background" in w for w in ann.warnings) and any("several classes" in w for w in ann.warnings)
    np.testing.assert_array_equal(painted, keep)
    with pytest.raises(InputError, match="same pixels"):
        classes_from_painted(lbl, painted[:10])


def test_ids_missing_from_the_objects_are_dropped_with_a_warning():
    ann = check_against_objects(ClassAnnotations({1: "a", 7: "b", 8: "b"}), np.array([1, 2, 5]))
    assert ann.classes == {1: "a"} and "2 annotated id(s) are not in the objects layer" in ann.warnings[-1]
