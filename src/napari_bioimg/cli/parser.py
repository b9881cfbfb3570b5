"""The command line's flags: one sub-parser per command, and the flag of every engine setting.

Options the engine defaults are ``None`` here (argparse's default): a command passes
only what the user gave, and the engine fills in the rest (see
:mod:`napari_bioimg.core.config`). Nothing here imports the engine, so ``--help``
answers at once.
"""

from __future__ import annotations

import argparse

from .embed import add_parser as add_embed_parser

#: Engine settings (training config fields, prediction options) -> the flag that sets them:
#: an engine error about a setting names the flag (``--batch-size must be at least 1, ...``).
FLAGS = {
    "time_limit": "--time-limit", "epochs": "--epochs", "steps_per_epoch": "--steps-per-epoch",
    "batch_size": "--batch-size", "patch_size": "--patch-size", "learning_rate": "--lr", "optimizer": "--optimizer",
    "grad_clip": "--grad-clip", "val_fraction": "--val-fraction", "patience": "--patience", "seed": "--seed",
    "device": "--device", "spatial_dims": "--dims", "num_threads": "--threads", "temporal_context": "--temporal-context",
    "model": "--model", "pretrain": "--pretrain", "pretrain_steps": "--pretrain-steps", "tile": "--tile", "overlap": "--overlap", "block": "--block", "label_margin": "--label-margin",
    "out": "--out", "diameter": "--diameter",
}
#: train flags that set the model's architecture (``TrainConfig.model_config``).
MODEL_FLAGS = ("depth", "base_channels", "norm", "latent_channels", "pool_z_levels")
#: train flags a resumed run takes from its checkpoint instead.
RESUME_FIXED = ("task", "model", "steps_per_epoch", "dims", "batch_size", "patch_size", "lr", "optimizer",
                "grad_clip", "val_fraction", "depth", "base_channels", "norm", "no_augment", "seed",
                "pool_z_levels", "temporal_context")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--axes", help="image axes, e.g. YX, ZYX, TYX, YXC (guessed when omitted)")
    p.add_argument("--device", help="auto, cuda, mps or cpu (default: auto)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice, one per core); "
                   "fewer can be faster on a machine busy with other work")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train a model on an image and its annotations, or on many images")
    t.add_argument("--task", default=None, help="instance, semantic, classify, ... (see 'napari-bioimg info'; "
                                                "default: instance, or the task of --init/--resume)")
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
    t.add_argument("--model", default=None, help="model family (default: the task's)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--time-limit", type=float, default=None, help="seconds of training (default 120)")
    budget.add_argument("--epochs", type=int, default=None, help="number of epochs of --steps-per-epoch batches")
    t.add_argument("--steps-per-epoch", type=int, help="batches per epoch (default 50)")
    t.add_argument("--dims", type=int, choices=(2, 3), help="2 = slice by slice, 3 = volumetric (default: 3 if Z)")
    t.add_argument("--batch-size", type=int, default=None, help="default: the task's (8, or 32 for classification)")
    t.add_argument("--patch-size", type=int, nargs="+",
                   help="patch size (one value, or one per spatial dim); for classify the crop size (default: "
                        "fitted to the objects)")
    t.add_argument("--lr", type=float, help="learning rate (default: the task's, else 2e-3)")
    t.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), help="default: adam")
    t.add_argument("--grad-clip", type=float, help="gradient norm clip (0 = off; default 1.0)")
    t.add_argument("--val-fraction", type=float, help="share of the annotations held apart for validation "
                                                      "(default 0.15)")
    t.add_argument("--patience", type=int, default=None,
                   help="stop early after this many validations without improvement (default: use the whole budget)")
    t.add_argument("--depth", type=int, help="U-Net depth, or number of classifier stages")
    t.add_argument("--base-channels", type=int, help="width of the first level / stage")
    t.add_argument("--norm", choices=("batch", "group", "instance", "none"))
    t.add_argument("--latent-channels", type=int, help="autoencoder: features per position of the bottleneck")
    t.add_argument("--pool-z-levels", type=int,
                   help="3D U-Net: levels that also halve Z (default: from the patch's Z size, for anisotropic data)")
    t.add_argument("--temporal-context", type=int, metavar="N",
                   help="time-lapse (T axis): also feed frames t-N..t+N as channels (default 0); "
                        "prediction reads N from the model file")
    t.add_argument("--pretrain", type=float, metavar="SECONDS",
                   help="first pretrain the network this long on every image (annotated or not) by blind-spot "
                        "denoising, then train the task from those weights; helps when few images are annotated")
    t.add_argument("--pretrain-steps", type=int, metavar="N", help="pretraining optimizer steps (with --pretrain: "
                                                                    "whichever ends first)")
    t.add_argument("--no-augment", action="store_true")
    t.add_argument("--seed", type=int, help="random seed (default 0)")
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
    p.add_argument("--tile", type=int, nargs="+", help="tile size (default 256 in 2D, 32x128x128 in 3D)")
    p.add_argument("--overlap", type=float, help="tile overlap as a fraction (default 0.25)")
    p.add_argument("--batch-size", type=int, help="tiles per forward pass (default 4; for classification, objects)")
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
    parser = argparse.ArgumentParser(
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
    d.add_argument("--time-limit", type=float, default=120.0)
    d.add_argument("--no-gui", action="store_true", help="skip the napari screenshot")
    d.add_argument("--device", default="auto")
    d.add_argument("--debug", action="store_true")
    return parser


def diameter(value: str) -> float | str:
    """``--diameter 30`` / ``--diameter auto``."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a number of pixels or 'auto', got {value!r}") from None


def sizes(values: list[int] | None):
    """``--tile 256`` / ``--tile 32 128 128`` -> ``256`` / ``(32, 128, 128)`` (``None`` when not given)."""
    return None if not values else (values[0] if len(values) == 1 else tuple(values))
