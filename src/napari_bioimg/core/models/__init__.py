"""Model families. Each module registers itself on import."""

from . import autoencoder, classifier, temporal, unet  # noqa: F401  (each registers its families)
from .registry import ModelProtocol, get_model, list_models, model_entry, model_protocol, register_model

__all__ = ["ModelProtocol", "get_model", "list_models", "model_entry", "model_protocol", "register_model"]
