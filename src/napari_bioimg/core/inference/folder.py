"""A folder of images on dask.distributed: one task per image, each through :func:`.predict.predict`.

Each worker loads the model once from its path (:func:`.distributed.worker_model`),
reads its image, predicts it in memory or block by block as the door decides, and
writes the result next to the others; one bad file does not stop the rest.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator
from pathlib import Path

import numpy as np

from ..data.zarrio import is_zarr_path
from ..errors import BioimgError, InputError
from ..events import Notice, PredictProgress
from ..settings.predict import PredictConfig
from .distributed import dask_client, worker_model, worker_threads
from .runner import reports_time
from .source import PredictSource


def output_path(image: Path, out_dir: Path) -> Path:
    """Where a folder prediction writes the result of ``image``: same stem, TIFF (zarr for zarr inputs)."""
    name = image.name
    if is_zarr_path(image):
        return out_dir / name
    stem = name[: -len(image.suffix)] if image.suffix else name
    return out_dir / f"{stem}.tif"


def list_images(folder: Path) -> tuple[list[Path], list[str]]:
    """Images in a folder (not recursive, sorted by name) and the names of the other files skipped.

    The data sets' rules (:func:`~..data.pairing.list_images`): TIFF, PNG/JPEG, NPY
    files and zarr folders. Two images with one name (``a.tif`` and ``a.png``) are
    refused, naming them: their results would overwrite each other.
    """
    from ..data.pairing import image_stem, listed
    from ..data.pairing import list_images as images_in

    found, skipped = images_in(folder)
    stems: dict[str, list[str]] = {}
    for p in found:
        stems.setdefault(image_stem(p).lower(), []).append(p.name)
    same = [" and ".join(names) for names in stems.values() if len(names) > 1]
    if same:
        raise InputError(f"{folder}: images with the same name would write the same result file: {listed(same)}; "
                         "rename or move one of each (nothing was written)")
    return found, skipped


def predict_file(model_path: str, image_path: str, out_path: str, config: PredictConfig, *,
                 axes: str | None = None, device: str = "auto") -> dict:
    """One image on a worker: read, predict (in memory or block by block), write. Returns a summary.

    User errors come back as ``{"error": message}`` so one bad file does not
    stop the others.
    """
    from ..control import drain
    from ..data.io import write_image
    from ..runtime.fast import configure_threads
    from .predict import predict

    configure_threads(worker_threads())
    try:
        loaded = worker_model(model_path, device)
        if is_zarr_path(image_path) or is_zarr_path(out_path):
            result = drain(predict(loaded, PredictSource(image_path, axes), config, out=out_path))
        else:
            result = drain(predict(loaded, PredictSource(image_path, axes).read(), config))
            write_image(out_path, np.asarray(result))
    except BioimgError as err:
        return {"image": image_path, "error": str(err)}
    return {"image": image_path, "out": out_path, "shape": list(result.shape), "dtype": str(result.dtype)}


@reports_time
def predict_folder(model_path: str | os.PathLike, folder: str | os.PathLike, out_dir: str | os.PathLike,
                   client=None, config: PredictConfig | None = None, *, axes: str | None = None,
                   device: str = "auto") -> Generator[PredictProgress | Notice, None, list[dict]]:
    """Predict every image of ``folder`` into ``out_dir``, one dask task per image (:func:`predict_file`).

    ``config`` is checked before any task starts; ``axes`` are the images' axes.
    Yields progress per image and a :class:`Notice` per failed image; returns the summaries.
    """
    from distributed import as_completed

    config = (config or PredictConfig()).validate()  # before any task
    images, skipped = list_images(Path(folder))
    if skipped:
        yield Notice(f"ignored {len(skipped)} file(s) that are not images: {', '.join(skipped[:8])}"
                     + (f" and {len(skipped) - 8} more" if len(skipped) > 8 else ""), "info")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client())
        futures = [client.submit(predict_file, str(model_path), str(p), str(output_path(p, out_dir)), config,
                                 axes=axes, device=device, pure=False, key=f"predict-{i}-{p.name}")
                   for i, p in enumerate(images)]
        results = []
        for done, fut in enumerate(as_completed(futures), 1):
            res = fut.result()
            results.append(res)
            if "error" in res:
                yield Notice(f"{Path(res['image']).name}: {res['error']}")
            yield PredictProgress(done, len(images), "images")
    return sorted(results, key=lambda r: r["image"])
