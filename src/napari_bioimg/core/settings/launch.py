"""How a training run is spread over processes: :class:`LaunchConfig` (data-parallel training, issue 23).

A setting of the command line's launcher rather than of the run itself: the model file does not record it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .declare import setting


@dataclass
class LaunchConfig:
    """Processes a training command starts on this machine (:mod:`napari_bioimg.cli.launch`)."""

    nproc: int | None = setting(
        None, "train data-parallel on N processes of this machine (torch.distributed: one GPU each with --device "
              "cuda, else the CPU cores shared among them); the port is $MASTER_PORT or a free one. Across machines "
              "run this command under torchrun instead (see the README)", low=1, high=1024, whole=True,
        hint="e.g. 2, or the number of GPUs", unset="one process")
