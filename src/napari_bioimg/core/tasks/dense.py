"""Dense tasks: a per-pixel result, trained on patches and predicted over overlapping tiles.

:class:`DenseTask` is the kind of segmentation (labels per pixel) and of
:class:`ImageTask`, the tasks whose result is an image (denoise, restore,
reconstruct): the network works on normalised intensities and
:meth:`ImageTask.postprocess` maps its output back to the intensities of the image
being predicted (the percentiles used to normalise it), clipped to the range of the
source's integer dtype so that casting back never wraps around.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.normalize import Normalizer
from ..data.patches import fit_patch
from ..metrics import psnr
from ..settings.defaults import IMAGE_PATCH_2D, IMAGE_PATCH_3D
from .base import Problem, Task


class DenseTask(Task):
    """A task whose model maps an image to a same-sized per-pixel output (a U-Net-like ``"dense"`` model).

    Training samples patches (``patch_size``), validation and prediction run the
    model over overlapping tiles (:mod:`..inference.tiling`), and ``postprocess``
    turns the activated outputs of one sample into its result.
    """

    predicts_items = False
    model_kind = "dense"
    default_model = "unet"


class ImageTask(DenseTask):
    """Shared behaviour of tasks whose result is an image (float32, the source's intensities)."""

    output_kind = "image"
    needs_annotations = False
    inputs = ("image",)
    val_margin = 16
    default_patch = IMAGE_PATCH_2D
    options: dict[str, tuple[float, float]] = {}

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def postprocess(self, outputs: np.ndarray, meta: dict) -> np.ndarray:
        """``(C, *spatial)`` normalised output -> intensities of the image that was normalised.

        ``meta`` carries that image's ``intensity_low``/``intensity_high`` (per
        channel) and ``source_dtype``; channels that were constant come back as
        that constant.
        """
        out = np.asarray(outputs, dtype=np.float32)
        low, high = meta.get("intensity_low"), meta.get("intensity_high")
        if low is not None and high is not None:
            out = Normalizer().invert(out, channel_axis=0, low=low, high=high).astype(np.float32, copy=False)
            for c, (lo, hi) in enumerate(zip(low, high)):
                if not hi - lo > 1e-12:
                    out[c] = lo
        dtype = meta.get("source_dtype")
        if dtype is not None and np.dtype(dtype).kind in "iu":
            info = np.iinfo(np.dtype(dtype))
            np.clip(out, info.min, info.max, out=out)
        return out

    def _patch(self, config, spatial, divisor) -> tuple[int, ...]:
        return fit_patch(config.patch_size, spatial, divisor, default_2d=IMAGE_PATCH_2D, default_3d=IMAGE_PATCH_3D)

    @staticmethod
    def _own_channels(inputs: np.ndarray, config) -> slice:
        """The channels of the frame being restored.

        With temporal context ``k`` the inputs hold frames ``t-k .. t+k`` (each with
        the image's channels) and the result is frame ``t`` alone.
        """
        k = int(getattr(config, "temporal_context", 0) or 0)
        c = inputs.shape[1] // (2 * k + 1)
        return slice(k * c, (k + 1) * c)

    def _psnr_validation(self, problem: Problem, predictions: list[np.ndarray]) -> tuple[dict, float]:
        refs, data_range = problem.val_data
        value = psnr(np.concatenate([p.ravel() for p in predictions]),
                     np.concatenate([r.ravel() for r in refs]), data_range)
        return {"psnr": value}, value
