"""Columns in a Labels layer's features table: the user's rows and columns survive, ours are keyed by label id."""

import numpy as np
import pandas as pd

from napari_bioimg._qt.object_features import classes_of, merge_columns, set_class
from napari_bioimg.core.data.annotations import classes_from_table


def test_merge_into_an_empty_table():
    out = merge_columns(pd.DataFrame(), [3, 1], {"x2d": [0.3, 0.1]})
    assert list(out["index"]) == [1, 3] and list(out["label"]) == [1, 3]
    assert list(out["x2d"]) == [0.1, 0.3]


def test_user_columns_and_rows_survive_ours_are_replaced():
    user = pd.DataFrame({"index": [0, 1, 2, 5], "area": [0, 10, 20, 50], "x2d": [9, 9, 9, 9]})
    out = merge_columns(user, [1, 2, 7], {"x2d": [1.0, 2.0, 7.0]})
    assert list(out["index"]) == [0, 1, 2, 5, 7]
    assert list(out["area"][:4]) == [0, 10, 20, 50] and np.isnan(out["area"][4])
    assert out["x2d"].tolist()[1:3] == [1.0, 2.0] and np.isnan(out["x2d"][0]) and np.isnan(out["x2d"][3])
    assert list(user["x2d"]) == [9, 9, 9, 9]  # the input table is not changed in place


def test_a_table_without_index_is_read_as_napari_does():
    """No ``index`` column: row k is label k (napari's rule), kept when ours are added."""
    user = pd.DataFrame({"area": [0, 11, 22]})
    out = merge_columns(user, [2], {"margin": [0.5]})
    assert list(out["index"]) == [0, 1, 2] and list(out["area"]) == [0, 11, 22]
    assert out.loc[out["index"] == 2, "margin"].item() == 0.5


def test_marking_classes_is_what_the_classify_task_reads():
    df = merge_columns(None, [1, 2, 3, 4], {"x2d": [0, 0, 0, 0]})
    df = set_class(df, [1, 2], "round")
    df = set_class(df, [2, 9], "long")  # re-marking wins; a new id gets a row
    assert classes_of(df, [1, 2, 3, 4, 9]) == ["round", "long", "", "", "long"]
    ann = classes_from_table({"label_id": list(df["index"]), "class": list(df["class"])})
    assert ann.classes == {1: "round", 2: "long", 9: "long"}  # unmarked objects are not annotated
