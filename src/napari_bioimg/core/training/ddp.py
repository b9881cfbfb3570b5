"""Data-parallel training on ``torch.distributed`` (DDP): the same run on several processes.

Every process ("rank") runs the one training pipeline (:func:`.loop.train`) on the
same data with the same settings; what differs is small and lives here:

* the process group: :func:`join` joins the one ``torchrun`` / ``torch.distributed.run``
  set up (its ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` ... variables): gloo on the CPU,
  NCCL on CUDA with one GPU per process; :func:`leave` ends it;
* a run set up inside that group (:func:`attach`, called by the set-ups) keeps the
  validation split of every rank identical (same seed) but draws its own patches:
  rank ``r > 0`` re-seeds its random streams from rank 0's and ``r`` (rank 0 keeps
  them, so one process is exactly the single-process run, and a resumed run goes on
  from the file's streams);
* :class:`World` is what the step loop asks: the network wrapped in
  ``DistributedDataParallel`` (gradients averaged over the ranks at each step), the
  budget and Stop agreed by all ranks at every step (one small all-reduce, so all
  stop together, and a rank that died makes the others fail at once), validation
  run by rank 0 and shared, and whether the replicas still hold the same weights.

Rank 0 alone calibrates and builds the model file; it is the same file a single
process writes (``training["processes"]`` says how many trained it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..errors import ConfigError, DeviceError

#: How long a collective waits for a rank that is alive but busy (rank 0 validating, calibrating).
TIMEOUT = timedelta(minutes=30)


def launched() -> bool:
    """This process was started by ``torchrun`` / ``torch.distributed.run`` (it has a rank)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def local_size() -> int:
    """Processes on this machine (``torchrun``'s ``--nproc-per-node``); 1 when not launched."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def threads_per_process(processes: int) -> int:
    """CPU threads each of ``processes`` processes on this machine gets, so they do not oversubscribe its cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, processes))


def backend_for(device: str | None) -> str:
    """``"nccl"`` when the run trains on CUDA (asked for, or ``auto`` with a GPU present), else ``"gloo"``."""
    name = (device or "auto").split(":")[0].lower()
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return "nccl"
    if name == "mps":
        raise ConfigError("trains on one Apple GPU only: several processes need CUDA GPUs or the CPU",
                          field="device")
    return "gloo"


def check_gpus(processes: int, device: str | None) -> None:
    """Enough CUDA GPUs on this machine for one per process (``device`` cuda; ``auto`` falls back to the CPU)."""
    if (device or "auto").split(":")[0].lower() != "cuda":
        return
    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if processes > found:
        fewer = f"start at most {found} per machine, or train on the CPU" if found else "train on the CPU instead"
        raise DeviceError(f"{processes} processes on CUDA need one GPU each, but this machine has {found}; {fewer}")


def join(device: str | None) -> World:
    """Join the process group the launcher set up; the local GPU (CUDA) is this process's device."""
    backend = backend_for(device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend == "nccl":
        check_gpus(local_size(), "cuda")
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=TIMEOUT)
    world = current()
    assert world is not None
    return world


def leave() -> None:
    """End this process's part in the process group (if it joined one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current() -> World | None:
    """The process group this process is in (``None`` outside one): a run set up now trains data-parallel."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                 dist.get_backend())


@dataclass(frozen=True)
class World:
    """This process's place among the ranks, and what the step loop asks of them."""

    rank: int
    size: int
    local_rank: int
    backend: str

    @property
    def main(self) -> bool:
        """Rank 0: validates, calibrates, reports and writes the model file."""
        return self.rank == 0

    def device(self) -> torch.device:
        """The tensors' device for collectives: this process's GPU (NCCL) or the CPU (gloo)."""
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The network for training steps: gradients averaged over the ranks, rank 0's weights to start with."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [torch.cuda.current_device()] if self.backend == "nccl" else None
        return DistributedDataParallel(model, device_ids=ids)

    def agree(self, fraction: float, control) -> float:
        """The budget used and Stop as all ranks see them, once per step: the largest fraction, and ``control``
        stopped if any rank's is (a rank that died makes this fail at once)."""
        t = torch.tensor([float(fraction), 1.0 if control.stop_requested else 0.0], dtype=torch.float64,
                         device=self.device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        if t[1] > 0:
            control.stop()
        return float(t[0])

    def shared(self, fn) -> Any:
        """``fn()`` run by rank 0 (validation), its result handed to every rank."""
        box = [fn() if self.main else None]
        dist.broadcast_object_list(box, src=0, device=self.device() if self.backend == "nccl" else None)
        return box[0]

    def in_sync(self, model: torch.nn.Module) -> bool:
        """Whether every rank holds the same weights (a checksum compared across ranks)."""
        with torch.no_grad():
            total = sum(float(p.double().sum()) for p in model.parameters())
        t = torch.tensor([total, -total], dtype=torch.float64, device=self.device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(abs(float(t[0]) + float(t[1])) <= 1e-6 * max(1.0, abs(total)))

    def finish(self, model: torch.nn.Module) -> dict[str, Any]:
        """What the model file records about the ranks (every rank calls this at the end of training)."""
        return {"processes": self.size, "backend": self.backend, "replicas_in_sync": self.in_sync(model)}


def attach(setup) -> None:
    """Bind a freshly set-up run to the process group, if this process is in one (:func:`current`).

    Rank ``r > 0`` draws its own patches: its random streams (the loop's, the data
    set sampler's, torch's) are re-seeded in place from rank 0's and ``r``, after the
    validation split was made (identically on every rank: the same seed).
    """
    world = current()
    if world is None:
        return
    if world.size > 1 and setup.config.seed is None:
        raise ConfigError("must be set when several processes train: they must hold out the same validation data",
                          field="seed")
    setup.world = world
    if world.rank == 0:
        return
    torch.manual_seed(int(spread(setup.rng, world.rank, 1).integers(1 << 62)))
    for rng in (setup.rng, setup.data_rng):
        if rng is not None:
            rng.bit_generator.state = spread(rng, world.rank).bit_generator.state


def spread(rng: np.random.Generator, rank: int, stream: int = 0) -> np.random.Generator:
    """A stream for ``rank`` derived from ``rng``'s state, without advancing ``rng``: different for each rank."""
    probe = np.random.Generator(type(rng.bit_generator)())
    probe.bit_generator.state = rng.bit_generator.state
    return np.random.default_rng([int(probe.integers(1 << 62)), int(rank), int(stream)])
