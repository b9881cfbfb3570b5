"""The command line's flags: one sub-parser per command, and the flag of every engine setting.

A flag that sets an engine setting is built from the setting's declaration
(:func:`.flags.add_setting`: type, bounds, choices, help, and the default shown in
the help); its argparse default is ``None``, so a command passes only what the user
gave and the engine fills in the rest (see :mod:`napari_bioimg.core.settings`). Only
the light declarations are imported, so ``--help`` answers at once.

To add a flag for a new engine setting: declare the field in its configuration
(``core/settings/*.py``, with :func:`~napari_bioimg.core.settings.declare.setting`),
then ``add_setting(parser, "--flag", Config, "field")`` here.
"""

from __future__ import annotations

import argparse
import math

from ..core.settings.declare import default
from ..core.settings.launch import LaunchConfig
from ..core.settings.model import ModelOptions
from ..core.settings.predict import PredictConfig
from ..core.settings.train import TrainConfig
from .embed import add_parser as add_embed_parser
from .flags import FLAGS, Parser, add_setting

__all__ = ["FLAGS", "MODEL_FLAGS", "RESUME_FIXED", "build_parser", "sizes"]

#: train flags that set the model's architecture (``TrainConfig.model_config``).
MODEL_FLAGS = ("depth", "base_channels", "norm", "latent_channels", "pool_z_levels")
#: train flags a resumed run takes from its checkpoint instead.
RESUME_FIXED = ("task", "model", "steps_per_epoch", "dims", "batch_size", "patch_size", "lr", "optimizer",
                "grad_clip", "val_fraction", "depth", "base_channels", "norm", "no_augment", "seed",
                "pool_z_levels", "temporal_context")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--axes", help="image axes, e.g. YX, ZYX, TYX, YXC (guessed when omitted)")
    add_setting(p, "--device", TrainConfig, "device")
    add_setting(p, "--threads", TrainConfig, "num_threads")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train a model on an image and its annotations, or on many images")
    add_setting(t, "--task", TrainConfig, "task", help="what to learn: instance, semantic, classify, ... (see "
                "'napari-bioimg info'); with --init/--resume, the model's")
    t.add_argument("--image", action="append", metavar="IMAGE",
                   help="image file (.tif, .png, .npy, .zarr) or a folder of images; repeat for several (images of "
                        "different sizes train one model)")
    t.add_argument("--labels", action="append", metavar="LABELS",
                   help="annotations: instance masks, class scribbles (0 = not annotated), or for classify the objects "
                        "to classify; one file per --image in the same order, or a folder: paired by file name "
                        "(a.tif <-> a.tif, a_mask.tif, a_labels.tif, ...)")
    t.add_argument("--data", metavar="CSV", help="a table listing the images instead: columns image,labels[,target]"
                                                 "[,split][,weight] (split: train|val; paths relative to the table)")
    t.add_argument("--allow-unlabelled", action="store_true",
                   help="keep images without annotations (listed as a note) instead of stopping: supervised tasks "
                        "skip them, --pretrain learns from them")
    t.add_argument("--classes", help="classify: CSV with columns label_id,class for some objects; "
                                     "classify-image: CSV with columns frame,class (frames numbered from 0)")
    t.add_argument("--target", action="append", metavar="TARGET",
                   help="restore: clean (or high-SNR) image of the same pixels, same shape (files in order, or a "
                        "folder paired by name)")
    t.add_argument("--reference", help="denoise: optional clean image; validation then scores PSNR against it")
    t.add_argument("--out", required=True, help="model file to write (.pt)")
    start = t.add_mutually_exclusive_group()
    start.add_argument("--resume", metavar="CKPT", help="continue a stopped run exactly where it stopped (same image "
                                                        "and labels; settings come from CKPT, --epochs/--time-limit "
                                                        "may give it a new budget)")
    start.add_argument("--init", "--start-from", dest="init", metavar="CKPT",
                       help="fine-tune this model: a model file, or a built-in such as builtin:nuclei-2d (see "
                            "'napari-bioimg info --builtin'); a new budget, step numbers and loss history continue")
    add_setting(t, "--model", TrainConfig, "model")
    budget = t.add_mutually_exclusive_group()
    add_setting(budget, "--time-limit", TrainConfig, "time_limit")
    add_setting(budget, "--epochs", TrainConfig, "epochs")
    add_setting(t, "--steps-per-epoch", TrainConfig, "steps_per_epoch")
    add_setting(t, "--dims", TrainConfig, "spatial_dims")
    add_setting(t, "--batch-size", TrainConfig, "batch_size",
                help="patches per training step; with several processes (--nproc, torchrun) the batch of each process")
    add_setting(t, "--patch-size", TrainConfig, "patch_size")
    add_setting(t, "--lr", TrainConfig, "learning_rate")
    add_setting(t, "--optimizer", TrainConfig, "optimizer")
    add_setting(t, "--grad-clip", TrainConfig, "grad_clip")
    add_setting(t, "--val-fraction", TrainConfig, "val_fraction")
    add_setting(t, "--patience", TrainConfig, "patience")
    for option in MODEL_FLAGS:
        add_setting(t, "--" + option.replace("_", "-"), ModelOptions, option)
    add_setting(t, "--temporal-context", TrainConfig, "temporal_context", metavar="N",
                help="time-lapse (T axis): also feed frames t-N..t+N as channels; prediction reads N from the "
                     "model file")
    add_setting(t, "--pretrain", TrainConfig, "pretrain", metavar="SECONDS",
                help="first pretrain the network this long on every image (annotated or not) by blind-spot "
                     "denoising, then train the task from those weights; helps when few images are annotated")
    add_setting(t, "--pretrain-steps", TrainConfig, "pretrain_steps", metavar="N")
    t.add_argument("--no-augment", action="store_true")
    add_setting(t, "--seed", TrainConfig, "seed")
    add_setting(t, "--nproc", LaunchConfig, "nproc", metavar="N")
    _add_common(t)


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="predict an image (or a folder of images) with a trained model")
    p.add_argument("--model", required=True, help="model file (.pt), built-in (builtin:nuclei-2d; see 'napari-bioimg "
                                                  "info --builtin') or bioimage.io package (.zip, folder, rdf.yaml)")
    p.add_argument("--diameter", type=diameter, metavar="PX",
                   help="typical object diameter in pixels, or 'auto' to estimate it: the image is rescaled to the "
                        "model's object size and the result back (default: the model's own scale)")
    p.add_argument("--image", required=True,
                   help="image file (.tif, .png, .npy), zarr / OME-Zarr folder, or a folder of images")
    p.add_argument("--labels", help="classify: the objects to classify (label image)")
    p.add_argument("--out", required=True,
                   help="output file (.tif, .png, .npy), .zarr / .ome.zarr folder (written block by block, "
                        "any size), or an output folder when --image is a folder; for classification .csv "
                        "writes label_id,class,probability per object, an image the class labels")
    for option in ("tile", "overlap", "batch_size", "block", "label_margin"):
        add_setting(p, "--" + option.replace("_", "-"), PredictConfig, option)
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="dask scheduler address (tcp://host:8786): run the images (folder) or blocks (zarr output) "
                        "on that cluster; folders use a local cluster when omitted")
    for option in ("workers", "compile", "tta"):
        add_setting(p, "--" + option, PredictConfig, option)
    _add_common(p)


def _add_export(sub) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="napari-bioimg", description="Command line: ``napari-bioimg train | predict | export | embed | evaluate | "
                                          "info | demo``.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_predict(sub)
    _add_export(sub)
    add_embed_parser(sub)

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
    i.add_argument("--model", help="model file (.pt), built-in (builtin:NAME) or bioimage.io package (.zip)")
    i.add_argument("--builtin", action="store_true", help="list the built-in models with their cards")
    i.add_argument("--debug", action="store_true")

    d = sub.add_parser("demo", help="train and predict on the bundled sample data, save outputs and a screenshot")
    d.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    add_setting(d, "--time-limit", TrainConfig, "time_limit", default=default(TrainConfig, "time_limit"))
    d.add_argument("--no-gui", action="store_true", help="skip the napari screenshot")
    add_setting(d, "--device", TrainConfig, "device", default=default(TrainConfig, "device"))
    d.add_argument("--debug", action="store_true")
    return parser


def diameter(value: str) -> float | str:
    """``--diameter 30`` / ``--diameter auto``."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        px = float(value)
    except ValueError:
        px = math.nan
    if not (math.isfinite(px) and 0 < px <= 4096):
        raise argparse.ArgumentTypeError(f"must be a number of pixels greater than 0 and at most 4096 (e.g. 30), or "
                                         f"'auto', got {value!r}")
    return px


def sizes(values: list[int] | None):
    """``--tile 256`` / ``--tile 32 128 128`` -> ``256`` / ``(32, 128, 128)`` (``None`` when not given)."""
    return None if not values else (values[0] if len(values) == 1 else tuple(values))
