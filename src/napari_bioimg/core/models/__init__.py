"""Model families. Each module registers itself on import."""

from . import autoencoder, classifier, unet  # noqa: F401  (register "autoencoder", "cnn", "resnet", "unet")
from .registry import get_model, list_models, model_entry, register_model

__all__ = ["get_model", "list_models", "model_entry", "register_model"]
