"""``napari-bioimg predict``: one image (in memory, or block by block into zarr), a folder, or a cluster.

The flags given make one :class:`~..core.settings.predict.PredictConfig`; the engine's
``predict`` picks the runner. The command says what the paths ask for (a folder of
images, ``--scheduler``: a cluster, a zarr ``--out``: block by block, else an
in-memory result) and writes the result.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .flags import config_from
from .progress import Progress

EXIT_FAILED_IMAGES = 2


def set_threads(threads: int | None) -> None:
    """``--threads``: torch's CPU threads for this process (checked by the engine's bounds)."""
    if threads is None:
        return
    import torch

    from ..core.config import check_field

    check_field("num_threads", threads)
    torch.set_num_threads(threads)


def cmd_predict(args) -> int:
    from ..core.control import drain
    from ..core.data.io import write_image
    from ..core.data.zarrio import is_zarr_path
    from ..core.errors import InputError
    from ..core.formats.loading import load_model, read_card
    from ..core.inference.predict import predict
    from ..core.inference.source import PredictSource
    from ..core.settings.predict import PredictConfig

    set_threads(args.threads)
    image_path, out = Path(args.image), Path(args.out)
    config = config_from(args, PredictConfig)
    folder = image_path.is_dir() and not is_zarr_path(image_path)
    if folder or args.scheduler:
        if folder:
            from ..core.inference.folder import list_images

            list_images(image_path)  # no images, or two that would write one result: said before a cluster starts
        read_card(args.model)  # a bad model file or package fails here, before a cluster starts
        if args.scheduler and not folder and not is_zarr_path(out):
            raise InputError("--scheduler on one image writes its blocks to a zarr store: use --out result.zarr")
        loaded = None
    else:
        loaded = load_model(args.model, args.device)
        if loaded.task.predicts_items:
            return _predict_classes(args, loaded, config)
    progress = Progress(args.quiet, "predict")
    try:
        if folder:
            return _predict_folder(args, image_path, out, config, progress)
        image = PredictSource(str(image_path), args.axes)
        if args.scheduler:
            from ..core.inference.distributed import dask_client

            with dask_client(args.scheduler) as client:
                result = drain(predict(args.model, image, config, out=out, client=client, device=args.device),
                               progress)
        elif is_zarr_path(out):
            result = drain(predict(loaded, image, config, out=out), progress)
        else:
            image = PredictSource(str(image_path), args.axes, diameter=args.diameter)
            result = drain(predict(loaded, image, config, lazy=False), progress)
            write_image(out, result)
    finally:
        progress.close()
    print(f"wrote {out}: shape {tuple(result.shape)}, {result.dtype}", file=sys.stderr)
    return 0


def _predict_classes(args, loaded, config) -> int:
    """Classification: a CSV (id, class, probability) or a label image of classes."""
    import numpy as np

    from ..core.control import drain
    from ..core.data.io import read_image, write_image, write_table
    from ..core.inference.predict import predict
    from ..core.inference.source import PredictSource

    labels = read_image(args.labels)[0] if args.labels else None
    as_table = Path(args.out).suffix.lower() == ".csv"
    progress = Progress(args.quiet, "predict")
    try:
        result = drain(predict(loaded, PredictSource(str(args.image), args.axes, labels=labels), config,
                               class_image=not as_table), progress)
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


def _predict_folder(args, folder: Path, out_dir: Path, config, progress) -> int:
    from ..core.control import drain
    from ..core.inference.distributed import dask_client
    from ..core.inference.folder import predict_folder

    with dask_client(args.scheduler, config.workers) as client:
        results = drain(predict_folder(args.model, folder, out_dir, client, config, axes=args.axes,
                                       device=args.device), progress)
    failed = [r for r in results if "error" in r]
    print(json.dumps({"images": len(results), "written": len(results) - len(failed), "out": str(out_dir),
                      "failed": failed}), file=sys.stderr)
    return EXIT_FAILED_IMAGES if failed else 0
