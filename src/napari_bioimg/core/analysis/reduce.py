"""Two-dimensional maps of feature vectors: PCA always, UMAP when ``umap-learn`` is installed.

UMAP keeps neighbourhoods (similar objects stay together, clusters separate) but is
an optional extra (``pip install napari-bioimg[umap]``); PCA needs nothing beyond
numpy, is deterministic and fast, and is the fallback.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from ..errors import ConfigError
from ..settings.embed import REDUCTIONS


def umap_available() -> bool:
    """Whether ``umap-learn`` can be imported (checked without importing it: numba is slow to load)."""
    return importlib.util.find_spec("umap") is not None


def standardize(features: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column (constant columns become 0), float64."""
    f = np.asarray(features, dtype=np.float64)
    f = f - f.mean(axis=0, keepdims=True)
    sd = f.std(axis=0, keepdims=True)
    return np.divide(f, sd, out=np.zeros_like(f), where=sd > 1e-12)


def pca(features: np.ndarray, n_components: int = 2, standardized: bool = False) -> np.ndarray:
    """Scores of ``(M, K)`` features on their first principal axes: ``(M, n_components)``.

    Features are standardised first unless ``standardized``. Each axis' sign is
    fixed (its largest loading is positive), so the same data always gives the same
    picture. Fewer rows or columns than ``n_components`` leave the missing
    components at 0. Computed from the ``K x K`` covariance, so 10^5 objects cost
    no more than a few of them.
    """
    f = np.asarray(features, dtype=np.float64) if standardized else standardize(features)
    if standardized:
        f = f - f.mean(axis=0, keepdims=True)
    out = np.zeros((f.shape[0], n_components))
    if f.shape[0] < 2 or f.shape[1] == 0:
        return out
    values, vectors = np.linalg.eigh(f.T @ f)
    k = min(n_components, f.shape[1], f.shape[0] - 1)
    axes = vectors[:, ::-1][:, :k].T  # largest variance first
    signs = np.sign(axes[np.arange(k), np.abs(axes).argmax(axis=1)])
    out[:, :k] = f @ (axes * signs[:, None]).T
    return out


def reduce_2d(features: np.ndarray, method: str = "auto", seed: int | None = 0,
              standardized: bool = False) -> tuple[np.ndarray, str]:
    """A 2D map of ``(M, K)`` features; returns ``(coords (M, 2) float32, method used)``.

    Parameters
    ----------
    method
        ``"pca"``, ``"umap"`` (needs ``umap-learn``) or ``"auto"`` (UMAP when
        installed and there are enough objects for it, else PCA).
    seed
        UMAP's random state (``None``: faster, parallel, not reproducible).
    standardized
        The features are already on a common scale (e.g. principal component
        scores, whose variances must be kept): do not standardise them again.
    """
    if method not in REDUCTIONS:
        raise ConfigError(f"unknown reduction {method!r}; choose one of {', '.join(REDUCTIONS)}")
    n = len(features)
    if method == "umap" and not umap_available():
        raise ConfigError("UMAP needs the optional package umap-learn (pip install umap-learn, or "
                          "napari-bioimg[umap]); or choose PCA")
    use_umap = method == "umap" or (method == "auto" and umap_available() and n >= 20)
    if use_umap and n >= 4:
        import umap

        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed,
                            init="spectral" if n > 10 else "random")
        f = np.asarray(features, dtype=np.float64) if standardized else standardize(features)
        return reducer.fit_transform(f).astype(np.float32), "umap"
    return pca(features, 2, standardized).astype(np.float32), "pca"
