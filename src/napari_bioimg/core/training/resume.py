"""Resumable training state: what a checkpoint needs so training continues exactly.

A finished or stopped run stores, next to the weights used for prediction, a
``"resume"`` section: optimizer (and AMP scaler) state, the global step, the step
at which this run's learning-rate schedule began, the active seconds spent, every
random stream the loop draws from (the numpy Generator that samples patches and
augmentations, torch's CPU and CUDA generators), the best validation score, and a
fingerprint of the training data. Everything is made of plain Python values and
tensors so that the file still loads with ``torch.load(weights_only=True)``.

The learning-rate schedule has no state of its own: it is a pure function of the
step and the fraction of the budget used (see :func:`.train.lr_factor`), so the
step count and the elapsed time restore it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import CheckpointError

if TYPE_CHECKING:
    from ..data.dataset import DataSet

#: Arrays larger than this are fingerprinted from a strided subsample (speed).
FULL_HASH_BYTES = 256 * 2**20


def _plain(value: Any) -> Any:
    """numpy scalars/arrays inside an RNG state -> Python ints and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    return value


def rng_state(rng: np.random.Generator, device: torch.device) -> dict[str, Any]:
    """Snapshot of every random stream the training loop uses."""
    state: dict[str, Any] = {
        "numpy": _plain(rng.bit_generator.state),
        "torch": torch.get_rng_state(),
        "cuda": None,
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], rng: np.random.Generator, device: torch.device) -> None:
    """Put the streams back where :func:`rng_state` found them."""
    saved = dict(state["numpy"])
    if saved.get("bit_generator") != type(rng.bit_generator).__name__:
        raise CheckpointError(f"the checkpoint's random generator is {saved.get('bit_generator')}, "
                              f"not {type(rng.bit_generator).__name__}; it cannot be resumed here")
    rng.bit_generator.state = saved
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def data_fingerprint(image: np.ndarray, annotations: np.ndarray | None) -> str:
    """Short hash of the training data, to tell whether a resume uses the same image and labels."""
    h = hashlib.blake2b(digest_size=12)
    for arr in (image, annotations):
        if arr is None:
            h.update(b"none")
            continue
        arr = np.asarray(arr)
        h.update(f"{arr.shape}{arr.dtype.str}".encode())
        flat = arr.reshape(-1)
        if flat.nbytes > FULL_HASH_BYTES:
            flat = flat[:: int(np.ceil(flat.nbytes / FULL_HASH_BYTES))]
        h.update(np.ascontiguousarray(flat).view(np.uint8).data)
    return h.hexdigest()


@dataclass
class RunState:
    """The training loop's own counters, carried across a resume.

    ``step`` is the global step (it keeps counting through fine-tuning and resumes,
    so the loss curve continues); ``run_start`` is the global step at which the
    current budget and learning-rate schedule began; ``elapsed_before`` is the
    active (not paused) time this run had already spent before a resume.
    """

    step: int = 0
    run_start: int = 0
    elapsed_before: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    best_score: float = -np.inf
    best_step: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def local_step(self) -> int:
        """Steps taken under the current budget."""
        return self.step - self.run_start


def dataset_fingerprint(ds: DataSet) -> str:
    """Short hash of a data set, to tell whether a resume uses the same images and annotations.

    Files count by name, size and modification time (reading every pixel of a big
    set would take longer than the resume saves); arrays held in memory by their
    pixels, as :func:`data_fingerprint`; other lazy arrays (dask, zarr objects) by
    their shape and type.
    """
    h = hashlib.blake2b(digest_size=12)
    for s in ds.samples:
        h.update(f"{s.name}|{s.split}|{s.weight}".encode())
        for src in (s.image, s.labels, s.target):
            if src is None:
                h.update(b"none")
            elif src.path is not None:
                h.update(f"{src.shape}{src.dtype.str}{_file_stamp(src.path)}".encode())
            elif isinstance(src.array, np.ndarray):
                h.update(data_fingerprint(src.array, None).encode())
            else:
                h.update(f"{src.shape}{src.dtype.str}{type(src.array).__name__}".encode())
    return h.hexdigest()


def _file_stamp(path) -> str:
    """Size and modification time of a file, or of a folder's files (zarr stores: their metadata files)."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        files = [f for f in sorted(path.rglob("*")) if f.is_file() and f.name in ("zarr.json", ".zarray", ".zattrs")]
        return ";".join(f"{f.relative_to(path)}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def training_state(run: RunState, optimizer: torch.optim.Optimizer, scaler, rng: np.random.Generator,
                   device: torch.device, elapsed: float, finished: bool, fingerprint: str,
                   data_rng: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint's ``"resume"`` section.

    ``data_rng`` is the state of a data set sampler's own random stream, as it was
    after the batches trained on (not after a batch prepared ahead of time).
    """
    return {
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else None,
        "step": int(run.step),
        "run_start": int(run.run_start),
        "elapsed": float(elapsed),
        "rng": rng_state(rng, device),
        "best_score": None if run.best_step is None else float(run.best_score),
        "best_step": run.best_step,
        "finished": bool(finished),
        "data_fingerprint": fingerprint,
        "data_rng": None if data_rng is None else _plain(data_rng),
    }


def last_weights(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights after the last step (``state_dict`` holds the best ones when validation chose)."""
    return ckpt.get("last_state_dict") or ckpt["state_dict"]


def read_run_state(ckpt: dict[str, Any]) -> tuple[RunState, dict[str, Any]]:
    """The loop counters and the raw ``"resume"`` section of a checkpoint written by training."""
    state = ckpt.get("resume")
    if not isinstance(state, dict) or "optimizer" not in state:
        raise CheckpointError("this model file has no training state to resume from (it was exported or "
                              "written by an older version); use it to fine-tune instead (--init)")
    best_step = state.get("best_step")
    run = RunState(
        step=int(state["step"]), run_start=int(state.get("run_start", 0)), elapsed_before=float(state["elapsed"]),
        history=[dict(h) for h in ckpt.get("history", [])],
        best_score=-np.inf if state.get("best_score") is None else float(state["best_score"]),
        best_step=None if best_step is None else int(best_step),
        best_state=None if best_step is None else dict(ckpt["state_dict"]),
        metrics=dict(ckpt.get("metrics", {})),
    )
    run.metrics.pop("best_score", None)
    return run, state
