"""Live training while the user annotates: edits that reach a running session, uncertainty, where to annotate next."""

from .edits import AnnotationEdit, ClassesChanged, ViewChanged
from .suggest import Region, suggest_regions
from .trainer import train_live

__all__ = ["AnnotationEdit", "ClassesChanged", "Region", "ViewChanged", "suggest_regions", "train_live"]
