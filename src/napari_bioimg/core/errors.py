"""User-facing errors: each message says what is wrong and how to fix it."""


class BioimgError(Exception):
    """Base class for errors caused by the user's input, shown as one clear line."""


class InputError(BioimgError, ValueError):
    """The image or annotations cannot be used as given (shape, content, dtype)."""


class ConfigError(BioimgError, ValueError):
    """A training or prediction setting is out of range."""


class CheckpointError(BioimgError):
    """A model file is missing, corrupt, or was written for something else."""


class DeviceError(BioimgError, RuntimeError):
    """The requested compute device is not available."""
