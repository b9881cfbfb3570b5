"""Process-wide torch settings, changed only where a front end opts in, and put back afterwards.

torch keeps some settings for the whole process: its CPU thread counts and its
global random streams. A library call that changed them would change them for
everything else in the process, napari's viewer included, and calling
``torch.set_num_threads`` from a worker thread while the main thread computes
rebuilds the thread pool under its feet. So the engine never sets the threads:

* :class:`RuntimeContext` is the front end's explicit choice for its process
  (the command line opts in: ``--threads``, a seed); on exit it restores the thread
  count and the random streams it found.
* :func:`torch_random` is what a training run uses for its own seed: the global
  random streams are seeded for the run (weights' initialisation and dropout draw
  from them; a checkpoint stores them to resume) and put back when the run ends, so
  a seeded run leaves the process's streams as it found them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch


def _cuda_devices() -> list[int]:
    """CUDA devices whose random state exists already (saving it must not initialise CUDA)."""
    return list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []


@contextlib.contextmanager
def torch_random(seed: int | None) -> Iterator[Callable[[], None]]:
    """Within the block torch's global random streams start from ``seed`` (unchanged when ``None``); after it,
    they are what they were before (CPU, and CUDA devices already in use).

    Yields a function that starts the streams from ``seed`` again (a run set up
    anew, e.g. live training once the first strokes are enough).
    """
    def reseed() -> None:
        if seed is not None:
            torch.manual_seed(seed)

    with torch.random.fork_rng(devices=_cuda_devices()):
        reseed()
        yield reseed


@dataclass
class RuntimeContext:
    """Process-wide torch settings a front end chooses for its process, restored on exit.

    Parameters
    ----------
    num_threads
        torch's intra-op CPU threads (``None``: unchanged).
    interop_threads
        torch's inter-op threads (``None``: unchanged). torch accepts this once per
        process, before any parallel work: it cannot be restored, and a later change
        is ignored.
    seed
        Seed of the global random streams (``None``: unchanged); restored on exit.

    Use it as a context manager around the work: ``with RuntimeContext(num_threads=4): ...``.
    """

    num_threads: int | None = None
    interop_threads: int | None = None
    seed: int | None = None
    _saved_threads: int | None = field(default=None, init=False, repr=False)
    _random: Any = field(default=None, init=False, repr=False)

    @classmethod
    def for_config(cls, config: Any) -> RuntimeContext:
        """The settings a :class:`~..config.TrainConfig` asks of the process (its ``num_threads``)."""
        return cls(num_threads=getattr(config, "num_threads", None))

    def __enter__(self) -> RuntimeContext:
        self._saved_threads = torch.get_num_threads()
        if self.num_threads and self.num_threads != self._saved_threads:
            torch.set_num_threads(int(self.num_threads))
        if self.interop_threads and self.interop_threads != torch.get_num_interop_threads():
            with contextlib.suppress(RuntimeError):  # too late in this process: torch keeps its own
                torch.set_num_interop_threads(int(self.interop_threads))
        self._random = torch_random(self.seed) if self.seed is not None else contextlib.nullcontext()
        self._random.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool:
        try:
            self._random.__exit__(*exc)
        finally:
            if torch.get_num_threads() != self._saved_threads:
                torch.set_num_threads(self._saved_threads)
        return False
