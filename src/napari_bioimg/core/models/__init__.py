"""Model families. Each module registers itself on import."""

from . import autoencoder, classifier, temporal, unet  # noqa: F401  (each registers its families)
from .registry import get_model, list_models, model_entry, register_model

__all__ = ["get_model", "list_models", "model_entry", "register_model"]
