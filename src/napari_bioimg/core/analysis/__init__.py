"""Understanding objects and models: object embeddings, classifier explanations.

GUI-free, like the rest of :mod:`napari_bioimg.core`: each job is a generator of
progress events that returns its result, with a ``*_sync`` twin for scripts.
"""

from .embed import EmbedConfig, Embedding, embed_objects, embed_objects_sync
from .explain import (
    Explanation,
    explain_objects,
    explain_objects_sync,
    gradcam,
    randomized_copy,
    rank_correlation,
)
from .reduce import pca, reduce_2d, umap_available

__all__ = [
    "EmbedConfig",
    "Embedding",
    "Explanation",
    "embed_objects",
    "embed_objects_sync",
    "explain_objects",
    "explain_objects_sync",
    "gradcam",
    "pca",
    "randomized_copy",
    "rank_correlation",
    "reduce_2d",
    "umap_available",
]
