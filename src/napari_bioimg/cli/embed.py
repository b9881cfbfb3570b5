"""``napari-bioimg embed``: a feature vector and a 2D map position for every object, as a CSV.

    napari-bioimg embed --image IMG.tif --labels OBJ.tif --out EMB.csv [--time-limit 20]
                        [--reduction auto|pca|umap] [--classifier MODEL.pt]

The CSV has one row per object: ``label_id, emb_0 .. emb_{K-1}, x2d, y2d``.
``add_parser`` adds the sub-command to the CLI's parser; ``cmd_embed`` runs it.
"""

from __future__ import annotations

import argparse
import sys

from ..core.settings.embed import EmbedConfig
from ..core.settings.train import TrainConfig
from .flags import add_setting
from .progress import Progress


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``embed`` sub-command to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    e = subparsers.add_parser(
        "embed", help="embed objects: features and a 2D map position per object (CSV)",
        description="Compute per-object features with a self-supervised autoencoder trained on the objects' crops "
                    "(or a classify model's penultimate layer) and reduce them to 2D (PCA, or UMAP when umap-learn is "
                    "installed and asked for, else PCA). Writes label_id,emb_0..emb_K,x2d,y2d.")
    e.add_argument("--image", required=True, help="image file (.tif, .png, .npy)")
    e.add_argument("--labels", required=True, help="the objects: a label image of the same pixels (0 = background)")
    e.add_argument("--out", required=True, help="CSV file to write")
    e.add_argument("--axes", help="image axes, e.g. YX, ZYX, TYX, YXC (guessed when omitted)")
    e.add_argument("--classifier", metavar="MODEL.pt",
                   help="use this classify model's penultimate features instead of training an autoencoder")
    budget = e.add_mutually_exclusive_group()
    add_setting(budget, "--time-limit", EmbedConfig, "time_limit")
    add_setting(budget, "--steps", EmbedConfig, "steps")
    for option in ("reduction", "latent_channels", "crop_size", "spatial_dims", "seed", "device"):
        flag = "--dims" if option == "spatial_dims" else "--" + option.replace("_", "-")
        add_setting(e, flag, EmbedConfig, option)
    add_setting(e, "--threads", TrainConfig, "num_threads")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    return e


def cmd_embed(args: argparse.Namespace) -> int:
    """Execute ``embed`` for parsed ``args`` (errors become one line in :func:`..main.main`, as for every command)."""
    from ..core.analysis import embed_objects
    from ..core.control import drain
    from ..core.data.io import read_image, write_table
    from ..core.errors import InputError

    if args.threads is not None:  # in range: checked as the flag was parsed
        import torch

        torch.set_num_threads(args.threads)
    if not str(args.out).lower().endswith(".csv"):
        raise InputError(f"--out must be a .csv file, got {args.out}")
    given = {"time_limit": args.time_limit, "steps": args.steps, "latent_channels": args.latent_channels,
             "reduction": args.reduction, "seed": args.seed, "device": args.device, "spatial_dims": args.dims,
             "crop_size": tuple(args.crop_size) if args.crop_size else None}
    config = EmbedConfig(**{k: v for k, v in given.items() if v is not None})
    if args.steps is not None and args.time_limit is None:
        config.time_limit = None  # --steps is the budget (the two flags exclude each other)
    config.validate()
    image, hint = read_image(args.image)
    labels, _ = read_image(args.labels)
    progress = Progress(args.quiet, "embed")
    try:
        emb = drain(embed_objects(image, labels, config, axes=args.axes, axes_hint=hint,
                                  classifier=args.classifier), progress)
    finally:
        progress.close()
    columns = emb.columns("label_id")
    table = {k: ([int(v) for v in vals] if k == "label_id" else [f"{float(v):.6g}" for v in vals])
             for k, vals in columns.items()}
    write_table(args.out, table)
    how = f"{emb.source} features" + (f", autoencoder {emb.info['steps']} steps" if "steps" in emb.info else "")
    print(f"wrote {args.out}: {len(emb.ids)} objects, {emb.features.shape[1]} features ({how}), "
          f"2D map by {emb.reduction.upper()}, {emb.info['total_seconds']:.1f} s", file=sys.stderr)
    return 0
