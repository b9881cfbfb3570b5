"""User-facing errors: each message says what is wrong and how to fix it.

An error about one setting carries its name in :attr:`BioimgError.field` and the
rest of the sentence in :attr:`BioimgError.detail`, so a front end can name the
setting its own way (the CLI says ``--batch-size must be at least 1 ...`` where
the engine says ``batch_size must be at least 1 ...``).
"""

from __future__ import annotations


class BioimgError(Exception):
    """Base class for errors caused by the user's input, shown as one clear line.

    Parameters
    ----------
    message
        The whole message; with ``field``, the sentence that follows the field's name.
    field
        The setting the error is about (a :class:`~.config.TrainConfig` field or a
        prediction option such as ``"overlap"``), or ``None``.
    """

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(f"{field} {message}" if field else message)
        self.field = field
        self.detail = message

    def named(self, name: str) -> str:
        """The message with the field called ``name`` (e.g. a command-line flag)."""
        return f"{name} {self.detail}" if self.field else str(self)


class InputError(BioimgError, ValueError):
    """The image or annotations cannot be used as given (shape, content, dtype)."""


class ConfigError(BioimgError, ValueError):
    """A training or prediction setting is out of range."""


class CheckpointError(BioimgError):
    """A model file is missing, corrupt, or was written for something else."""


class DeviceError(BioimgError, RuntimeError):
    """The requested compute device is not available."""
