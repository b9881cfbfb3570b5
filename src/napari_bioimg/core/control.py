"""Cooperative stop signal shared between a running job and whoever started it."""

from __future__ import annotations

import threading


class Control:
    """Lets a GUI or a script stop a training or prediction generator cleanly.

    The generator checks :attr:`stop_requested` once per step and, when set, finishes
    its current step and returns its result (the model trained so far), unlike
    killing the thread, which would lose it.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the job to stop at the next step."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()
