"""Cooperative stop signal and a pause-aware clock for running jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator


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


class ActiveClock:
    """Seconds spent *running*, not paused.

    A generator is suspended at a ``yield`` while its consumer holds it (napari's
    worker ``pause()`` simply stops asking for the next value), so measuring only
    the time between resuming and the next ``yield`` leaves paused time out of the
    training budget, the ETA and the learning-rate schedule.
    """

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = float(offset)
        self._since: float | None = None

    def reset(self, offset: float = 0.0) -> None:
        """Restart counting from ``offset`` seconds (keeps running if running)."""
        self.offset = float(offset)
        if self._since is not None:
            self._since = time.perf_counter()

    def start(self) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    def stop(self) -> None:
        if self._since is not None:
            self.offset += time.perf_counter() - self._since
            self._since = None

    def elapsed(self) -> float:
        running = time.perf_counter() - self._since if self._since is not None else 0.0
        return self.offset + running


def run_clocked(gen: Generator, clock: ActiveClock) -> Generator:
    """Re-yield ``gen``'s events, with ``clock`` running only while ``gen`` runs; return its value."""
    clock.start()
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                return stop.value
            clock.stop()
            yield event
            clock.start()
    finally:
        clock.stop()
        gen.close()


def drain(gen: Generator, callback=None):
    """Exhaust a generator, passing events to ``callback``; return its return value."""
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            return stop.value
        if callback is not None:
            callback(ev)
