"""``napari-bioimg train``: the flags given -> a :class:`TrainConfig`, the files -> the engine, the model -> a file.

Only what the user gave goes into the config; the engine fills in the task's
defaults and checks every value (its errors name the setting, which the CLI shows
as its flag).
"""

from __future__ import annotations

import json
import sys

from .parser import MODEL_FLAGS, RESUME_FIXED
from .progress import Progress


def train_config_from_args(args, start: dict | None = None):
    """The :class:`TrainConfig` a ``train`` command line asks for (``start``: the --init/--resume checkpoint)."""
    from ..core import TrainConfig
    from ..core.config import resume_config
    from ..core.formats.checkpoint import ModelCard

    card = ModelCard.of(start) if start is not None else None
    if args.resume:
        changes = {"epochs": args.epochs, "time_limit": args.time_limit, "device": args.device,
                   "num_threads": args.threads}
        return resume_config(card.train_config, **{k: v for k, v in changes.items() if v is not None})
    given = {
        "task": args.task or (card.task if card is not None else None), "model": args.model,
        "spatial_dims": args.dims, "time_limit": args.time_limit, "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch, "batch_size": args.batch_size,
        "patch_size": tuple(args.patch_size) if args.patch_size else None, "learning_rate": args.lr,
        "optimizer": args.optimizer, "val_fraction": args.val_fraction, "patience": args.patience,
        "seed": args.seed, "device": args.device, "num_threads": args.threads,
        "temporal_context": args.temporal_context, "pretrain": args.pretrain, "pretrain_steps": args.pretrain_steps,
    }
    config = {k: v for k, v in given.items() if v is not None}
    if args.epochs is not None and args.time_limit is None:
        config["time_limit"] = None  # --epochs is the budget (the two flags exclude each other)
    if args.grad_clip is not None:
        config["grad_clip"] = args.grad_clip or None  # 0 turns clipping off
    if args.no_augment:
        config["augment"] = False
    model_config = {k: getattr(args, k) for k in MODEL_FLAGS if getattr(args, k) is not None}
    return TrainConfig(model_config=model_config, **config).validate()


class GracefulStop:
    """First Ctrl+C: finish the current step and save a resumable model; second: abort."""

    def __init__(self, control, progress):
        self.control, self.progress, self.previous = control, progress, None

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.control.stop_requested:
            raise KeyboardInterrupt
        self.control.stop()
        self.progress.write("stopping after this step; the model will be saved (Ctrl+C again aborts)")

    def __exit__(self, *exc):
        import signal

        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def training_data(args, task, config):
    """The files of a ``train`` command line -> a data set (and the extras one image may take).

    Images and their annotations are paired by :func:`~..core.data.collect.collect`
    (folders by file name, files in the order given, or a ``--data`` table); every
    problem is named before anything is read beyond the files' headers.
    """
    from ..core.data.collect import collect
    from ..core.data.io import read_image
    from ..core.errors import InputError

    if not args.image and not args.data:
        raise InputError("give the images: --image FILE_OR_FOLDER (repeatable) or --data pairs.csv")
    if "objects" in task.inputs and not args.labels and not args.data:
        raise InputError(f"task {task.name!r} needs --labels OBJECTS.tif: the label image of the objects to classify")
    for flag, name in (("--labels", "labels"), ("--target", "target")):
        if getattr(args, name) and name not in task.inputs and not (name == "labels" and "objects" in task.inputs):
            raise InputError(f"task {task.name!r} does not use {flag}; it takes {', '.join(task.inputs)}")
    if "classes" in task.inputs and not args.classes and not args.data:
        raise InputError(f"task {task.name!r} needs --classes CLASSES.csv with columns {task.id_name},class")
    keep = args.allow_unlabelled or bool(config.pretrain or config.pretrain_steps) or not task.needs_annotations
    try:
        collection = collect(args.image or (), args.labels or (), targets=args.target or (),
                             classes=[args.classes] if args.classes else (), data=args.data,
                             unlabelled="keep" if keep else "error")
    except InputError as err:
        if "have no annotation" in str(err):
            raise InputError(f"{err} (--allow-unlabelled)") from None
        raise
    for note in collection.notices:
        print(f"napari-bioimg: note: {note}", file=sys.stderr)
    if "target" in task.inputs and not any(e.target for e in collection.entries):
        raise InputError(f"task {task.name!r} needs --target: a clean (or high-SNR) image of the same pixels")
    extra = None
    if args.reference:
        if len(collection) != 1:
            raise InputError("--reference is a clean copy of one image: train on that one image to use it")
        extra = {"reference": read_image(args.reference)[0]}
    data = collection.open(axes=args.axes, spatial_dims=args.dims,
                           id_columns=getattr(task, "id_columns", None) if "classes" in task.inputs else None)
    return data, extra


def _command_line(args, path) -> str:
    """The command that continues a stopped run on the same files."""
    given = [f"--image {p}" for p in args.image or ()] + [f"--labels {p}" for p in args.labels or ()]
    given += [f"--target {p}" for p in args.target or ()] + ([f"--data {args.data}"] if args.data else [])
    return f"napari-bioimg train --resume {path} {' '.join(given)} --out {path}"


def cmd_train(args) -> int:
    from ..core import Control

    start, config, data, extra = prepare(args)
    progress = Progress(args.quiet, f"train {config.task}")
    control = Control()
    try:
        with GracefulStop(control, progress):
            result = fit(args, start, config, data, extra, control, progress)
    finally:
        progress.close()
    return report(args, result, data)


def prepare(args):
    """The command line's starting checkpoint, configuration, data set and extras (every check before training)."""
    from ..core import get_task
    from ..core.formats.checkpoint import load_checkpoint

    start = load_checkpoint(args.resume or args.init) if (args.resume or args.init) else None
    config = train_config_from_args(args, start)
    if args.resume:
        ignored = [f"--{k.replace('_', '-')}" for k in RESUME_FIXED if getattr(args, k) is not None
                   and getattr(args, k) is not False]
        if ignored:
            print(f"napari-bioimg: note: {', '.join(ignored)} ignored: a resumed run keeps its checkpoint's settings",
                  file=sys.stderr)
    task = get_task(config.task)
    data, extra = training_data(args, task, config)
    return start, config, data, extra


def fit(args, start, config, data, extra, control, callback):
    """Train (the engine's generator to its end); ``callback`` sees each event.

    The command line owns its process: ``--threads`` sets torch's threads for the run
    (:class:`~..core.runtime.context.RuntimeContext`, put back afterwards).
    """
    from ..core.control import drain
    from ..core.runtime.context import RuntimeContext
    from ..core.training.loop import train

    with RuntimeContext.for_config(config):
        return drain(train(data, None, config, preview_index=None, control=control,
                           init_checkpoint=start if args.init else None, resume=start if args.resume else None,
                           extra=extra), callback)


def report(args, result, data) -> int:
    """Write the model file (atomically) and say what was trained."""
    from ..core.formats.checkpoint import ModelCard, save_checkpoint

    path = save_checkpoint(result.checkpoint, args.out)
    card = ModelCard.of(result.checkpoint)
    summary = {"model": str(path), "steps": result.steps, "seconds": round(result.seconds, 1),
               "stopped_early": result.stopped_early, "validation": result.metrics}
    if len(data) > 1:
        summary["images"] = len(data)
    if card.validation_size is not None:
        summary["validation_size"] = {"n": card.validation_size, "unit": card.validation_unit}
    print(json.dumps(summary), file=sys.stderr)
    if card.validation_caveat:
        print(f"napari-bioimg: note: {card.validation_caveat}", file=sys.stderr)
    if result.stopped_early:
        print(f"napari-bioimg: stopped early at step {result.steps}; continue later with: "
              f"{_command_line(args, path)}", file=sys.stderr)
    return 0
