"""Command line: ``napari-bioimg train | predict | export | evaluate | info | demo``.

The same engine as the napari widgets. Progress goes to stderr (tqdm), results to
files or stdout (JSON); an error is one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from .progress import Progress

EXIT_USER_ERROR = 2
EXIT_INTERNAL = 1


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--axes", help="image axes, e.g. YX, ZYX, TYX, YXC (guessed when omitted)")
    p.add_argument("--device", default="auto", help="auto, cuda, mps or cpu (default: auto)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice, one per core); "
                   "fewer can be faster on a machine busy with other work")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-bioimg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on an image and its annotations")
    t.add_argument("--task", default=None, help="instance, semantic, classify, ... (see 'napari-bioimg info'; "
                                                "default: instance, or the task of --init/--resume)")
    t.add_argument("--image", required=True, help="image file (.tif, .png, .npy)")
    t.add_argument("--labels", help="annotations: instance masks, class scribbles (0 = not annotated), "
                                    "or for classify the objects to classify")
    t.add_argument("--classes", help="classify: CSV with columns label_id,class for some objects; "
                                     "classify-image: CSV with columns frame,class (frames numbered from 0)")
    t.add_argument("--target", help="restore: clean (or high-SNR) image of the same pixels, same shape")
    t.add_argument("--reference", help="denoise: optional clean image; validation then scores PSNR against it")
    t.add_argument("--out", required=True, help="model file to write (.pt)")
    start = t.add_mutually_exclusive_group()
    start.add_argument("--resume", metavar="CKPT", help="continue a stopped run exactly where it stopped (same image "
                                                        "and labels; settings come from CKPT, --epochs/--time-limit "
                                                        "may give it a new budget)")
    start.add_argument("--init", metavar="CKPT", help="fine-tune this model, e.g. on corrected labels (a new "
                                                      "budget; step numbers and loss history continue)")
    t.add_argument("--model", default=None, help="model family (default: the task's)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--time-limit", type=float, default=None, help="seconds of training (default 120)")
    budget.add_argument("--epochs", type=int, default=None, help="number of epochs of --steps-per-epoch batches")
    t.add_argument("--steps-per-epoch", type=int, default=50)
    t.add_argument("--dims", type=int, choices=(2, 3), help="2 = slice by slice, 3 = volumetric (default: 3 if Z)")
    t.add_argument("--batch-size", type=int, default=None, help="default: 8, or 32 for classification")
    t.add_argument("--patch-size", type=int, nargs="+",
                   help="patch size (one value, or one per spatial dim); for classify the crop size (default: "
                        "fitted to the objects)")
    t.add_argument("--lr", type=float, help="learning rate (default: the task's, else 2e-3)")
    t.add_argument("--optimizer", default="adam", choices=("adam", "adamw", "sgd"))
    t.add_argument("--grad-clip", type=float, default=1.0, help="gradient norm clip (0 = off)")
    t.add_argument("--val-fraction", type=float, default=0.15)
    t.add_argument("--patience", type=int, default=None,
                   help="stop early after this many validations without improvement (default: use the whole budget)")
    t.add_argument("--depth", type=int, help="U-Net depth, or number of classifier stages")
    t.add_argument("--base-channels", type=int, help="width of the first level / stage")
    t.add_argument("--norm", choices=("batch", "group", "instance", "none"))
    t.add_argument("--latent-channels", type=int, help="autoencoder: features per position of the bottleneck")
    t.add_argument("--pool-z-levels", type=int,
                   help="3D U-Net: levels that also halve Z (default: from the patch's Z size, for anisotropic data)")
    t.add_argument("--temporal-context", type=int, default=0, metavar="N",
                   help="time-lapse (T axis): also feed frames t-N..t+N as channels (default 0); "
                        "prediction reads N from the model file")
    t.add_argument("--no-augment", action="store_true")
    t.add_argument("--seed", type=int, default=0)
    _add_common(t)

    p = sub.add_parser("predict", help="predict an image (or a folder of images) with a trained model")
    p.add_argument("--model", required=True, help="model file (.pt) or bioimage.io package (.zip, folder, rdf.yaml)")
    p.add_argument("--image", required=True,
                   help="image file (.tif, .png, .npy), zarr / OME-Zarr folder, or a folder of images")
    p.add_argument("--labels", help="classify: the objects to classify (label image)")
    p.add_argument("--out", required=True,
                   help="output file (.tif, .png, .npy), .zarr / .ome.zarr folder (written block by block, "
                        "any size), or an output folder when --image is a folder; for classification .csv "
                        "writes label_id,class,probability per object, an image the class labels")
    p.add_argument("--tile", type=int, nargs="+", help="tile size (default 256 in 2D, 32x128x128 in 3D)")
    p.add_argument("--overlap", type=float, default=0.25, help="tile overlap as a fraction (default 0.25)")
    p.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass (default 4)")
    p.add_argument("--block", type=int, nargs="+",
                   help="block size for zarr output (default 2048 in 2D, 64x256x256 in 3D); memory grows with it")
    p.add_argument("--label-margin", type=int,
                   help="instances: context in pixels around each block (default: about two object diameters)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="dask scheduler address (tcp://host:8786): run the images (folder) or blocks (zarr output) "
                        "on that cluster; folders use a local cluster when omitted")
    p.add_argument("--workers", type=int, help="local cluster workers for a folder (default: one per 4 cores)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (slower start, faster tiles)")
    p.add_argument("--tta", action="store_true", help="average over flips (test-time augmentation, 4x slower)")
    _add_common(p)

    x = sub.add_parser("export", help="export a model: bioimage.io package, TorchScript or ONNX")
    x.add_argument("--model", required=True, help="model file (.pt) written by train")
    x.add_argument("--format", default="bioimageio", choices=("bioimageio", "torchscript", "onnx"))
    x.add_argument("--out", required=True, help="file to write (.zip for bioimageio; a .json sidecar comes "
                                                "with torchscript/onnx)")
    x.add_argument("--sample", help="an image like the training data, for tracing, test tensors and cover "
                                    "(default: the bundled nuclei sample)")
    x.add_argument("--axes", help="axes of --sample, e.g. YX, ZYX, YXC (guessed when omitted)")
    x.add_argument("--name", help="bioimage.io: model name (letters, digits, spaces, _+-())")
    x.add_argument("--description", help="bioimage.io: one-line description")
    x.add_argument("--author", action="append", help="bioimage.io: author name (repeat for several)")
    x.add_argument("--license", default="CC-BY-4.0", help="bioimage.io: SPDX licence id (default CC-BY-4.0)")
    x.add_argument("--debug", action="store_true")

    e = sub.add_parser("evaluate", help="score a prediction against ground truth (JSON on stdout)")
    e.add_argument("--task", default="instance", help="instance, semantic, classify, classify-image, or "
                   "denoise/restore/reconstruct (PSNR and SSIM against a clean reference)")
    e.add_argument("--pred", required=True, help="prediction (image, or CSV for classify)")
    e.add_argument("--truth", required=True, help="ground truth (image, or CSV id,class for classify)")
    e.add_argument("--axes", help="with a T or S axis, frames are matched (or SSIM is computed) separately; "
                   "C marks a channel axis")
    e.add_argument("--include-zero", action="store_true", help="semantic: score label 0 as a class too")
    e.add_argument("--debug", action="store_true")

    i = sub.add_parser("info", help="describe a model file, or list tasks and models")
    i.add_argument("--model", help="model file (.pt) or bioimage.io package (.zip)")
    i.add_argument("--debug", action="store_true")

    d = sub.add_parser("demo", help="train and predict on the bundled sample data, save outputs and a screenshot")
    d.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    d.add_argument("--time-limit", type=float, default=120.0)
    d.add_argument("--no-gui", action="store_true", help="skip the napari screenshot")
    d.add_argument("--device", default="auto")
    d.add_argument("--debug", action="store_true")
    return parser


RESUME_FIXED = ("task", "model", "steps_per_epoch", "dims", "batch_size", "patch_size", "lr", "optimizer",
                "grad_clip", "val_fraction", "depth", "base_channels", "norm", "no_augment", "seed",
                "pool_z_levels", "temporal_context")


def train_config_from_args(args, start=None):
    """The :class:`TrainConfig` a ``train`` command line asks for (``start``: the --init/--resume checkpoint)."""
    from ..core import TrainConfig, get_task

    if args.resume:
        config = TrainConfig.from_dict(start["train_config"])
        config.device, config.preview_every = args.device, 0
        if args.epochs is not None:
            config.epochs = args.epochs
        if args.time_limit is not None:
            config.time_limit = args.time_limit
        return config.validate()
    task = get_task(args.task or (start["task"]["name"] if start else "instance"))
    model = args.model or (start["model"]["name"] if start else task.default_model)
    model_config = {k: v for k, v in {"depth": args.depth, "base_channels": args.base_channels,
                                      "norm": args.norm, "latent_channels": args.latent_channels,
                                      "pool_z_levels": args.pool_z_levels}.items()
                    if v is not None}
    return TrainConfig(
        task=task.name, model=model, model_config=model_config,
        spatial_dims=args.dims or (int(start["data"]["spatial_dims"]) if start else None),
        time_limit=args.time_limit if args.time_limit is not None else (None if args.epochs is not None else 120.0),
        epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size if args.batch_size is not None else task.default_batch_size,
        patch_size=tuple(args.patch_size) if args.patch_size else None,
        learning_rate=args.lr if args.lr is not None else (task.default_learning_rate or 2e-3),
        optimizer=args.optimizer, grad_clip=args.grad_clip or None, val_fraction=args.val_fraction, patience=args.patience,
        augment=not args.no_augment, seed=args.seed, device=args.device, preview_every=0,
        temporal_context=args.temporal_context,
    )


class _GracefulStop:
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


def _set_threads(args) -> None:
    if getattr(args, "threads", None) is None:
        return
    from ..core.errors import ConfigError

    if not 1 <= args.threads <= 1024:
        raise ConfigError(f"--threads must be between 1 and 1024, got {args.threads}")
    import torch

    torch.set_num_threads(args.threads)


def cmd_train(args) -> int:
    from ..core import Control, get_task
    from ..core.control import drain
    from ..core.data.annotations import classes_from_table
    from ..core.data.io import read_image, read_table
    from ..core.errors import InputError
    from ..core.formats.checkpoint import load_checkpoint, save_checkpoint
    from ..core.training.loop import train

    _set_threads(args)
    start = load_checkpoint(args.resume or args.init) if (args.resume or args.init) else None
    config = train_config_from_args(args, start)
    if args.resume:
        defaults = build_parser().parse_args(["train", "--image", "-", "--out", "-"])
        ignored = [f"--{k.replace('_', '-')}" for k in RESUME_FIXED if getattr(args, k) != getattr(defaults, k)]
        if ignored:
            print(f"napari-bioimg: note: {', '.join(ignored)} ignored: a resumed run keeps its checkpoint's settings",
                  file=sys.stderr)
    task = get_task(config.task)
    if "objects" in task.inputs and not args.labels:
        raise InputError(f"task {task.name!r} needs --labels OBJECTS.tif: the label image of the objects to classify")
    for flag, name in (("--labels", "labels"), ("--target", "target")):
        if getattr(args, name) and name not in task.inputs and not (name == "labels" and "objects" in task.inputs):
            raise InputError(f"task {task.name!r} does not use {flag}; it takes {', '.join(task.inputs)}")
    extra = {name: read_image(getattr(args, name))[0] for name in ("target", "reference") if getattr(args, name)}
    if "target" in task.inputs and "target" not in extra:
        raise InputError(f"task {task.name!r} needs --target: a clean (or high-SNR) image of the same pixels")
    if "classes" in task.inputs:
        if not args.classes:
            raise InputError(f"task {task.name!r} needs --classes CLASSES.csv with columns {task.id_name},class")
        extra["classes"] = (classes_from_table(read_table(args.classes, (task.id_name, "class")), task.id_columns))
    image, hint = read_image(args.image)
    labels = read_image(args.labels)[0] if args.labels else None
    progress = Progress(args.quiet, f"train {config.task}")
    control = Control()
    try:
        with _GracefulStop(control, progress):
            result = drain(train(image, labels, config, axes=args.axes, axes_hint=hint, preview_index=None,
                                 control=control, init_checkpoint=start if args.init else None,
                                 resume=start if args.resume else None, extra=extra or None), progress)
    finally:
        progress.close()
    path = save_checkpoint(result.checkpoint, args.out)
    summary = {"model": str(path), "steps": result.steps, "seconds": round(result.seconds, 1),
               "stopped_early": result.stopped_early, "validation": result.metrics}
    print(json.dumps(summary), file=sys.stderr)
    if result.stopped_early:
        print(f"napari-bioimg: stopped early at step {result.steps}; continue later with: napari-bioimg train "
              f"--resume {path} --image {args.image}" + (f" --labels {args.labels}" if args.labels else "")
              + f" --out {path}", file=sys.stderr)
    return 0


def _sizes(values):
    return None if not values else (values[0] if len(values) == 1 else tuple(values))


def cmd_predict(args) -> int:
    from ..core.control import drain
    from ..core.data.io import read_image, write_image
    from ..core.data.zarrio import is_zarr_path, open_image
    from ..core.errors import InputError
    from ..core.formats.checkpoint import load_checkpoint
    from ..core.formats.loading import load_model
    from ..core.inference.predict import LAZY_BYTES, predict
    from ..core.inference.runner import working_bytes

    _set_threads(args)
    image_path, out = Path(args.image), Path(args.out)
    opts = {"tile": _sizes(args.tile), "overlap": args.overlap, "batch_size": args.batch_size,
            "block": _sizes(args.block), "label_margin": args.label_margin, "compile": args.compile,
            "tta": args.tta}
    folder = image_path.is_dir() and not is_zarr_path(image_path)
    if folder or args.scheduler:
        load_checkpoint(args.model)  # a bad model file fails here, before a cluster starts
        if args.scheduler and not folder and not is_zarr_path(out):
            raise InputError("--scheduler on one image writes its blocks to a zarr store: use --out result.zarr")
        loaded = None
    else:
        loaded = load_model(args.model, args.device)
        if loaded.task.direct_model:
            image, hint = read_image(args.image)
            return _predict_classes(args, loaded, image, hint)
    progress = Progress(args.quiet, "predict")
    try:
        if folder:
            return _predict_folder(args, image_path, out, opts, progress)
        if args.scheduler:
            from ..core.inference.distributed import dask_client, predict_image_distributed

            with dask_client(args.scheduler) as client:
                result = drain(predict_image_distributed(args.model, image_path, out, client, axes=args.axes,
                                                         device=args.device, **opts), progress)
        elif is_zarr_path(out):
            result = drain(predict(loaded, str(image_path), args.axes, out=out, **opts), progress)
        else:
            if is_zarr_path(image_path) or image_path.suffix.lower() in (".tif", ".tiff"):
                lazy_image, hint, _ = open_image(image_path)
                need = working_bytes(tuple(lazy_image.shape), loaded)
                if need > LAZY_BYTES:
                    raise InputError(
                        f"{image_path.name} needs about {need / 2**30:.1f} GiB to predict in memory; write the "
                        "result to a zarr folder instead (--out result.zarr) to predict it block by block"
                    )
            image, hint = (lazy_image[...], hint) if is_zarr_path(image_path) else read_image(image_path)
            result = drain(predict(loaded, image, args.axes, axes_hint=hint, lazy=False, **opts), progress)
            write_image(out, result)
    finally:
        progress.close()
    print(f"wrote {out}: shape {tuple(result.shape)}, {result.dtype}", file=sys.stderr)
    return 0


def _predict_classes(args, loaded, image, hint) -> int:
    """Classification: a CSV (id, class, probability) or a label image of classes."""
    import numpy as np

    from ..core.control import drain
    from ..core.data.io import read_image, write_image, write_table
    from ..core.inference.predict import predict

    labels = read_image(args.labels)[0] if args.labels else None
    as_table = Path(args.out).suffix.lower() == ".csv"
    progress = Progress(args.quiet, "predict")
    try:
        result = drain(predict(loaded, image, args.axes, labels=labels, batch_size=max(args.batch_size, 32),
                               axes_hint=hint, class_image=not as_table, tta=args.tta), progress)
    finally:
        progress.close()
    if as_table:
        write_table(args.out, result.table())
    else:
        write_image(args.out, result.class_image)
    counts = {str(c): int(n) for c, n in zip(result.class_names, np.bincount(result.index,
                                                                               minlength=len(result.class_names)))}
    print(f"wrote {args.out}: {len(result.ids)} {loaded.task.unit} classified, per class {counts}", file=sys.stderr)
    return 0


def _evaluate_classes(args) -> dict:
    """Join prediction and truth tables on the id column and score the common ids."""
    from ..core.data.annotations import FRAME_COLUMNS, ID_COLUMNS, classes_from_table, unify_class_values
    from ..core.data.io import read_table
    from ..core.errors import InputError
    from ..core.metrics import classification_scores

    id_columns = tuple(dict.fromkeys(ID_COLUMNS + FRAME_COLUMNS))
    pred = classes_from_table(read_table(args.pred), id_columns)
    truth = classes_from_table(read_table(args.truth), id_columns)
    for name, ann in (("prediction", pred), ("truth", truth)):
        for w in ann.warnings:
            print(f"warning ({name}): {w}", file=sys.stderr)
    common = sorted(set(pred.classes) & set(truth.classes))
    if not common:
        raise InputError("the prediction and the truth share no ids: check that both tables number the same objects")
    missing = sorted(set(truth.classes) - set(pred.classes))
    if missing:
        print(f"warning: {len(missing)} id(s) of the truth have no prediction and are not scored", file=sys.stderr)
    values = unify_class_values([truth.classes[i] for i in common] + [pred.classes[i] for i in common])
    t, p = values[: len(common)], values[len(common):]
    scores = classification_scores(t, p, sorted(set(values)))
    return {"task": args.task, "n_truth": len(truth.classes), "n_missing": len(missing), **scores}


def _predict_folder(args, folder: Path, out_dir: Path, opts: dict, progress) -> int:
    from ..core.control import drain
    from ..core.inference.distributed import dask_client, predict_folder

    with dask_client(args.scheduler, args.workers) as client:
        results = drain(predict_folder(args.model, folder, out_dir, client, axes=args.axes, device=args.device,
                                       **opts), progress)
    failed = [r for r in results if "error" in r]
    print(json.dumps({"images": len(results), "written": len(results) - len(failed), "out": str(out_dir),
                      "failed": failed}), file=sys.stderr)
    return EXIT_USER_ERROR if failed else 0


def cmd_export(args) -> int:
    from ..core.data.io import read_image
    from ..core.errors import ConfigError
    from ..core.formats.export import export_model, onnx_difference, sample_input
    from ..core.formats.loading import load_model

    loaded = load_model(args.model, "cpu")
    sample, hint = read_image(args.sample) if args.sample else (None, None)
    info = {k: v for k, v in {"name": args.name, "description": args.description, "authors": args.author,
                              "license": args.license}.items() if v is not None and args.format == "bioimageio"}
    path = export_model(loaded, args.format, args.out, sample=sample, sample_axes=args.axes or hint, **info)
    print(f"wrote {path}", file=sys.stderr)
    if args.format == "onnx":
        try:
            diff = onnx_difference(loaded, path, sample_input(loaded, sample, args.axes or hint))
        except ConfigError as err:
            print(f"napari-bioimg: note: not checked with onnxruntime ({err})", file=sys.stderr)
        else:
            print(f"onnxruntime vs PyTorch on the sample: max abs difference {diff:.2e}", file=sys.stderr)
    return 0


def cmd_evaluate(args) -> int:
    import numpy as np

    from ..core.data.io import read_image
    from ..core.errors import InputError
    from ..core.metrics import image_scores, matching, matching_stack, semantic_scores

    if args.task in ("classify", "classify-image"):
        print(json.dumps(_evaluate_classes(args), indent=2))
        return 0
    pred, _ = read_image(args.pred)
    truth, _ = read_image(args.truth)
    if pred.shape != truth.shape:
        raise InputError(f"prediction shape {pred.shape} differs from ground truth {truth.shape}")
    if args.task == "instance":
        axes = (args.axes or "").upper()
        if axes and axes[0] in "TS" and pred.ndim >= 3:
            m = matching_stack(list(truth), list(pred))
        else:
            m = matching(truth, pred)
        at = m["thresholds"]["0.5"]
        report = {"task": "instance", "n_true": m["n_true"], "n_pred": m["n_pred"], "f1": at["f1"],
                  "precision": at["precision"], "recall": at["recall"],
                  "mean_ap": float(np.mean([v["ap"] for v in m["thresholds"].values()])),
                  "thresholds": m["thresholds"]}
    elif args.task == "semantic":
        report = {"task": "semantic", **semantic_scores(truth, pred, ignore_zero=not args.include_zero)}
    elif args.task in ("denoise", "restore", "reconstruct"):
        scores = image_scores(pred, truth, args.axes)
        # identical images have an infinite PSNR, which strict JSON cannot hold
        report = {"task": args.task, **{k: (v if np.isfinite(v) else None) for k, v in scores.items()}}
    else:
        raise InputError(f"evaluate does not know task {args.task!r}; use instance, semantic, classify, "
                         "classify-image, denoise, restore or reconstruct")
    print(json.dumps(report, indent=2))
    return 0


def cmd_info(args) -> int:
    from ..core import list_models, list_tasks
    from ..core.formats.checkpoint import load_checkpoint

    if args.model:
        from ..core.formats.bioimageio.files import is_bioimageio_source
        from ..core.formats.loading import load_model

        ck = load_model(args.model, "cpu").checkpoint if is_bioimageio_source(args.model) else \
            load_checkpoint(args.model)
        info = {k: ck.get(k) for k in ("version", "created", "model", "task", "data", "normalizer", "metrics",
                                      "training", "bioimageio") if k in ck}
        info["resumable"] = "resume" in ck
        print(json.dumps(info, indent=2, default=str))
    else:
        print(json.dumps({"tasks": list_tasks(), "models": list_models()}, indent=2))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out), args.time_limit, gui=not args.no_gui, device=args.device)


COMMANDS = {"train": cmd_train, "predict": cmd_predict, "export": cmd_export, "evaluate": cmd_evaluate,
            "info": cmd_info, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..core.errors import BioimgError

    try:
        return COMMANDS[args.command](args)
    except BioimgError as err:
        if args.debug:
            traceback.print_exc()
        print(f"napari-bioimg: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("napari-bioimg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stderr.close()
        return 0
    except MemoryError:
        print("napari-bioimg: error: out of memory; use a smaller --tile/--batch-size or a GPU", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as err:  # one clear line, never a wall of traceback by default
        if args.debug:
            traceback.print_exc()
        print(f"napari-bioimg: internal error: {type(err).__name__}: {err} (rerun with --debug for details)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
