"""``napari-bioimg train`` on several processes: ``--nproc N`` here, or each process ``torchrun`` starts.

``--nproc N`` checks the command (settings, files, GPUs, port) once, then starts N
copies of the same command through ``torch.distributed``'s launcher (the engine of
``torchrun``) and waits; each copy joins the process group and trains (see
:mod:`napari_bioimg.core.training.ddp`); rank 0 shows the progress and writes the
model file. A process that dies stops the others (the launcher ends them within a
fraction of a second; a collective on a lost peer fails at once) and this command
names it in one line; no model file is written, an earlier one stays as it was.
Ctrl+C (passed on to every process by the launcher) makes each finish its step; they agree
to stop, and rank 0 saves a model that ``--resume`` continues.

Under ``torchrun ... -m napari_bioimg.cli train ...`` each process runs this
module's :func:`_member` directly.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

from .train import GracefulStop, fit, prepare, report

#: Set for the processes ``--nproc`` starts: the launcher reports their failures, they stay quiet about lost peers.
LAUNCHER = "NAPARI_BIOIMG_LAUNCHER"
#: Exit status of a process that stopped because another one was lost.
EXIT_PEER_LOST = 3
EXIT_FAILED = 1
EXIT_USER_ERROR = 2


def cmd_train(args) -> int:
    """``train``: one process, the ``--nproc`` launcher, or one of the processes of a launch."""
    from ..core.training.ddp import launched
    from .train import cmd_train as train_one

    if launched():
        return _member(args)
    if args.nproc is not None:
        return _launch(args)
    return train_one(args)


def parallel(args) -> bool:
    """Whether this ``train`` command trains on several processes (``--nproc``, or started by ``torchrun``)."""
    from ..core.training.ddp import launched

    return args.nproc is not None or launched()


# ---------------------------------------------------------------- the launcher


def _launch(args) -> int:
    from ..core.errors import ConfigError
    from ..core.training.ddp import backend_for, check_gpus, threads_per_process

    n = args.nproc
    if n < 1:
        raise ConfigError("--nproc must be at least 1 (the number of training processes on this machine)")
    if backend_for(args.device) == "nccl":  # cuda, or auto on a machine with a GPU: one GPU per process
        check_gpus(n, "cuda")
    port = _port()
    prepare(args)  # settings and files checked once, here, before any process starts
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logger = logging.getLogger("torch.distributed.elastic")
    quiet = logging.NullHandler()
    if not args.debug:  # its failure report is ours to give, in one line
        logger.addHandler(quiet)
        logger.propagate = False
    # what the processes inherit (the launcher passes them this process's environment)
    variables = {LAUNCHER: "1", "OMP_NUM_THREADS": str(threads_per_process(n))}
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=n, run_id=uuid.uuid4().hex, rdzv_backend="c10d",
                          rdzv_endpoint=f"127.0.0.1:{port}", max_restarts=0, monitor_interval=0.1,
                          # this machine by its loopback address: a host name that does not resolve (no
                          # /etc/hosts entry, no DNS) would leave the processes waiting for each other
                          local_addr="127.0.0.1", rdzv_timeout=120)
    started = time.time()
    try:
        elastic_launch(config, sys.executable)("-m", "napari_bioimg.cli", *args.argv)
    except ChildFailedError as err:
        print(f"napari-bioimg: error: {_failure(err.failures, n)}", file=sys.stderr)
        return EXIT_FAILED
    except SignalException as err:  # Ctrl+C: passed on to the processes, which stopped after their step
        out = Path(args.out)
        if err.sigval == signal.SIGINT and out.exists() and out.stat().st_mtime >= started:
            return 0  # rank 0 saved the model and said how to continue
        raise KeyboardInterrupt from None
    except Exception as err:  # the rendezvous (the port taken since we looked)
        if "EADDRINUSE" in str(err) or "address already in use" in str(err).lower():
            print(f"napari-bioimg: error: {_port_message(port)}", file=sys.stderr)
            return EXIT_FAILED
        raise
    finally:
        for k, v in saved.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
        logger.removeHandler(quiet)
        logger.propagate = True
    return 0


def _port() -> int:
    """``$MASTER_PORT`` if free (else a clear error), or a free port."""
    from ..core.errors import ConfigError

    wanted = os.environ.get("MASTER_PORT")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", int(wanted) if wanted else 0))
        except OSError:
            raise ConfigError(_port_message(wanted)) from None
        except ValueError:
            raise ConfigError(f"MASTER_PORT={wanted!r} is not a port number") from None
        return int(s.getsockname()[1])


def _port_message(port) -> str:
    return (f"port {port} (MASTER_PORT) is already in use on this machine, by another training or program; "
            "set MASTER_PORT to a free port, or unset it to take any free one")


def _failure(failures: dict, n: int) -> str:
    """One line naming the process that failed first (not those stopped because of it)."""
    def cause(item):
        rank, f = item
        consequence = f.exitcode in (EXIT_PEER_LOST, -signal.SIGTERM)
        return (consequence, f.timestamp, rank)

    rank, f = min(failures.items(), key=cause)
    if f.exitcode < 0:
        how = f"was killed ({f.signal_name()})"
    else:
        how = f"failed (exit status {f.exitcode}{'; its error is above' if f.exitcode == 2 else ''})"
    return (f"training process rank {rank} (of {n}) {how}; the other processes were stopped and no model file was "
            "written (an earlier one is unchanged)")


# ---------------------------------------------------------------- one of the processes


def _member(args) -> int:
    """One rank: join the group, train, and (rank 0) write the model file."""
    import torch

    from ..core import Control
    from ..core.errors import BioimgError
    from ..core.training.ddp import join, leave, local_size, threads_per_process
    from .progress import Progress

    world = join(args.device)
    torch.set_num_threads(args.threads or threads_per_process(local_size()))
    launcher = bool(os.environ.get(LAUNCHER))
    control = Control()
    progress = None
    try:
        quiet = launcher or not world.main  # the launcher (or rank 0) has said the notes already
        with contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext():
            start, config, data, extra = prepare(args)
        progress = Progress(args.quiet or not world.main, f"train {config.task} ({world.size} processes)")
        # Ctrl+C reaches every process (the launcher passes it on): each stops after its step, all agree
        with GracefulStop(control, progress if world.main else _Silent()):
            result = fit(args, start, config, data, extra, control, progress if world.main else None)
        progress.close()
        return report(args, result, data) if world.main else 0
    except BioimgError:
        if launcher and not world.main:
            return EXIT_USER_ERROR  # every rank meets the same error: rank 0 says it
        raise
    except Exception as err:
        if progress is not None:
            progress.close()
        if not _lost_peer(err):
            raise
        if not launcher:
            print(f"napari-bioimg: error: rank {world.rank}: another training process stopped or was killed, so this "
                  "one stops too; no model file was written", file=sys.stderr)
        return EXIT_PEER_LOST
    finally:
        leave()


def _lost_peer(err: BaseException) -> bool:
    """Whether ``err`` is a collective failing because another process is gone."""
    import torch.distributed as dist

    text = str(err).lower()
    return isinstance(err, dist.DistError) or (isinstance(err, RuntimeError) and any(
        w in text for w in ("gloo", "nccl", "connection closed", "connection reset", "broken pipe")))


class _Silent:
    """Where a rank > 0 says nothing (rank 0 speaks for all)."""

    def write(self, msg: str) -> None:
        pass
