"""Image-to-image tasks: self-supervised denoising, supervised restoration, reconstruction.

* ``denoise`` learns from the noisy image alone (Noise2Void blind spot with the N2V2
  fixes: no top skip connection, blur-pool, median replacement).
* ``restore`` learns from pairs: the image and a clean (or high-SNR) target of the
  same pixels, with an MSE or L1 loss.
* ``reconstruct`` trains a plain autoencoder to reproduce its input (compression,
  feature learning).

All three predict an image (:class:`~.dense.ImageTask`); this module holds the
denoiser and the helpers the image tasks share (held-apart boxes, pixel losses).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.patches import PatchSampler, ValRegion
from ..data.targets import ImageTargets
from ..errors import InputError
from ..settings.defaults import IMAGE_PATCH_2D, IMAGE_PATCH_3D, network_width
from .base import Problem, check_task_config
from .dense import ImageTask
from .masking import mask_batch, masked_mse
from .sets import require_set_signal, set_parts, set_patch

#: Most pixels held apart for validation (2D, 3D): enough for a stable score, cheap to evaluate.
VAL_MAX_PIXELS = {2: 2 * 128 * 128, 3: 2 * 8 * 48 * 48}
#: Masked pixels per training patch: more than Noise2Void's 0.2% (as Noise2Self's 1/16 grid) gives many
#: more supervised pixels per step, which matters most when training gets minutes on a CPU.
DEFAULT_MASK_FRACTION = 0.06
#: Share of training patches centred on the image's brighter structures rather than anywhere.
DEFAULT_FOCUS = 0.5
#: Fraction of the validation pixels masked when scoring the blind-spot loss (fixed, seeded).
VAL_MASK_FRACTION = 1 / 16


def held_apart_boxes(shape: tuple[int, ...], val_fraction: float, max_pixels: int) -> list[ValRegion]:
    """Validation boxes for an ``(N, C, *spatial)`` image when every pixel is a training pixel.

    With 4 or more samples (frames, slices) a few evenly spread ones each give a
    box; otherwise every sample does. Boxes sit in the far corner, are about as
    long as they are wide, hold about ``val_fraction`` of the pixels (at most
    ``max_pixels`` in all, at most half a sample) and are at least 8 pixels a side.
    Returns ``[]`` for images too small to spare any.
    """
    n, spatial = shape[0], tuple(shape[2:])
    size = int(np.prod(spatial))
    if val_fraction <= 0 or n * size < 4096:
        return []
    if n >= 4:
        k = min(4, max(1, int(round(val_fraction * n))))
        samples = np.unique(np.linspace(0, n - 1, k + 2)[1:-1].round().astype(int))
    else:
        samples = np.arange(n)
    per = min(max_pixels, val_fraction * n * size) / len(samples)
    per = min(per, 0.5 * size)
    sides = [0] * len(spatial)
    remaining = per
    for j, d in enumerate(np.argsort(spatial)):
        side = int(round(remaining ** (1.0 / (len(spatial) - j))))
        sides[d] = int(min(spatial[d], max(8, side)))
        remaining /= sides[d]
    box = tuple(slice(s - b, s) for s, b in zip(spatial, sides))
    return [ValRegion(int(i), box) for i in samples]


def bright_regions(inputs: np.ndarray, held: np.ndarray, quantile: float = 0.7, stride: int = 4) -> np.ndarray:
    """Where to centre most training patches: the brightest 30% of the image (locally averaged).

    Microscopy images are often mostly dark background, which a denoiser learns
    quickly; the structures are where the remaining error is. Candidates sit on a
    ``stride`` grid (fewer coordinates to keep) and outside the held-apart boxes.
    ``(N, *spatial)`` bool.
    """
    from scipy import ndimage as ndi

    grid = (slice(None), *[slice(None, None, stride)] * (inputs.ndim - 2))
    mean = inputs.mean(axis=1)
    smooth = np.stack([ndi.uniform_filter(m, size=9, mode="reflect") for m in mean])
    coarse = smooth[grid]
    threshold = np.quantile(coarse, quantile)
    out = np.zeros(held.shape, dtype=bool)
    out[grid] = (coarse > threshold) & ~held[grid]
    return out


def refuse_repeated_frames(inputs: np.ndarray, own: slice) -> None:
    """Raise if a context frame is an exact copy of the frame being denoised.

    The copy would show the blind-spot network the noisy value it must predict, so it
    would learn to copy the noise (a one-frame "time-lapse", or duplicated frames).
    """
    c = own.stop - own.start
    grid = (slice(None, None, 4),) * (inputs.ndim - 2)
    for i in range(inputs.shape[0]):
        mine = inputs[(i, own, *grid)]
        for start in range(0, inputs.shape[1], c):
            if start != own.start and np.array_equal(inputs[(i, slice(start, start + c), *grid)], mine):
                raise InputError("with temporal context a neighbouring frame is an exact copy of the frame being "
                                 "denoised (a single frame, or repeated frames): the denoiser would learn to copy "
                                 "the noise; set the temporal context to 0")


def image_patch(ds, config, divisor) -> tuple[int, ...]:
    """The patch of an image task on a data set (:data:`~..settings.defaults.IMAGE_PATCH_2D`, ``_3D``)."""
    return set_patch(ds, config, divisor, default_2d=IMAGE_PATCH_2D, default_3d=IMAGE_PATCH_3D)


def held_mask(shape: tuple[int, ...], regions: list[ValRegion]) -> np.ndarray:
    held = np.zeros((shape[0], *shape[2:]), dtype=bool)
    for r in regions:
        held[(r.sample, *r.box)] = True
    return held


def training_targets(values: np.ndarray, invalid: np.ndarray | None, held: np.ndarray) -> np.ndarray:
    """A float copy of ``values`` with NaN (= ignored by the loss) where held apart or not finite."""
    targets = np.array(values, dtype=np.float32)
    targets[np.broadcast_to(held[:, None], targets.shape)] = np.nan
    if invalid is not None:
        targets[invalid] = np.nan
    return targets


def reference_crops(values: np.ndarray, regions: list[ValRegion]) -> tuple[list[np.ndarray], float]:
    """The reference inside each validation box, and its data range over all boxes (for PSNR)."""
    refs = [values[(r.sample, slice(None), *r.box)] for r in regions]
    finite = np.concatenate([r[np.isfinite(r)] for r in refs])
    span = float(finite.max() - finite.min()) if finite.size else 0.0
    return refs, span if span > 0 else 1.0


def pixel_loss(prediction: torch.Tensor, target: torch.Tensor, l1: bool = False) -> torch.Tensor:
    """Mean squared (or absolute) error over the pixels whose target is finite (NaN = ignore)."""
    use = torch.isfinite(target)
    diff = torch.where(use, prediction.float() - torch.nan_to_num(target.float()),
                       torch.zeros((), device=target.device))
    return (diff.abs() if l1 else diff**2).sum() / use.sum().clamp(min=1)


def require_signal(values: np.ndarray, invalid: np.ndarray | None = None, what: str = "image") -> None:
    """Raise if no channel of ``values`` varies (ignoring NaN and ``invalid``): there is nothing to learn."""
    for c in range(values.shape[1]):
        ok = np.isfinite(values[:, c])
        if invalid is not None:
            ok &= ~invalid[:, c]
        v = values[:, c][ok]
        if v.size and v.max() > v.min():
            return
    raise InputError(f"the {what} is constant (every pixel has the same value): there is no structure or noise "
                     f"to learn from; pick another {what}")


class DenoiseTask(ImageTask):
    """Self-supervised denoising from the noisy image alone (Noise2Void / N2V2).

    Options (``TrainConfig.task_config``): ``mask_fraction`` (masked pixels per
    patch, default 0.06), ``radius`` (neighbourhood half-width, default 2),
    ``median`` (1: N2V2 median replacement, 0: a random neighbour), ``focus``
    (share of patches centred on the brighter structures, default 0.5).

    Validation holds a few boxes apart and scores the blind-spot loss on a fixed
    set of masked pixels in them (score = -loss; a curve to watch, the final
    weights are kept); with ``extra["reference"]`` (a clean image) it scores PSNR
    against it instead, and the best weights by PSNR are kept.
    """

    name = "denoise"
    description = "Denoising without clean data (Noise2Void/N2V2 blind spot): needs only the noisy image"
    result_label = "denoised"

    def pretrain_refusal(self) -> str | None:
        return "is self-supervised already"
    default_learning_rate = 4e-3
    options = {"mask_fraction": (0.001, 0.25), "radius": (1, 5), "median": (0, 1), "focus": (0, 1)}

    def default_model_config(self, spatial_dims, device_type="cpu", model=None):
        width = network_width(device_type)
        if model == "autoencoder":
            return {"depth": 2, "base_channels": width, "latent_channels": 64, "pool": "blur"}
        if model in (None, "unet", "unet-gru"):  # N2V2, and resize upsampling: no faint grid in the result
            return {"depth": 2, "base_channels": width, "pool": "blur", "top_skip": False, "upsample": "resize"}
        return {}

    def make_problem(self, inputs, annotations, config, rng, divisor, extra=None):
        extra = extra or {}
        opts = check_task_config(dict(config.task_config), self.options)
        invalid = extra.get("invalid")
        own = self._own_channels(inputs, config)
        frame = inputs[:, own]
        require_signal(frame, invalid)
        if own.start:
            refuse_repeated_frames(inputs, own)
        meta = {"mask_fraction": opts.get("mask_fraction", DEFAULT_MASK_FRACTION), "radius": int(opts.get("radius", 2)),
                "replace": "median" if opts.get("median", 1.0) >= 0.5 else "random", "own": [own.start, own.stop]}
        regions = held_apart_boxes(inputs.shape, config.val_fraction, VAL_MAX_PIXELS[inputs.ndim - 2])
        held = held_mask(inputs.shape, regions)
        targets = training_targets(frame, invalid, held)
        patch = self._patch(config, inputs.shape[2:], divisor)
        focus = opts.get("focus", DEFAULT_FOCUS)
        centres = bright_regions(frame, held) if focus > 0 else None
        if centres is not None and not centres.any():
            centres = None
        sampler = PatchSampler(inputs, targets, centres, patch, rng, augment=config.augment, focus=focus,
                               rescale=False, intensity=False)
        problem = Problem(self, inputs, sampler, frame.shape[1], meta, regions, None,
                          int((~held).sum()), int(held.sum()))
        reference = extra.get("reference")
        if regions and reference is not None:
            problem.val_data = reference_crops(reference, regions)
        elif regions:
            problem.val_inputs, problem.val_data = self._blind_spot_validation(inputs, invalid, regions, meta)
            problem.val_size = sum(int(use.sum()) for use, _ in problem.val_data)  # the masked pixels scored
            # the blind-spot loss is mostly the noise's own variance: too noisy a score to pick a checkpoint,
            # so it is shown as a curve and the final (annealed) weights are kept
            problem.select_best = False
        return problem

    def make_dataset_problem(self, ds, config, rng, divisor):
        if config.temporal_context:
            raise InputError("temporal context trains on one time-lapse at a time, not on a set of images; set "
                             "it to 0 or train on one image")
        opts = check_task_config(dict(config.task_config), self.options)
        require_set_signal(ds)
        meta = {"mask_fraction": opts.get("mask_fraction", DEFAULT_MASK_FRACTION), "radius": int(opts.get("radius", 2)),
                "replace": "median" if opts.get("median", 1.0) >= 0.5 else "random", "own": [0, ds.n_channels]}
        nd = ds.spatial_dims
        # boxes in a few planes, as for one image: the denoiser trains on the images it will denoise
        split = ds.split(config.val_fraction, needs="image", whole=False, max_regions=4,
                         max_region_pixels=VAL_MAX_PIXELS[nd] // 4)
        parts = set_parts(ds, config, rng, ImageTargets(needs="image"), image_patch(ds, config, divisor),
                          margin=self.val_margin, split=split, rescale=False, intensity=False)
        problem = Problem(self, None, parts.sampler, ds.n_channels, meta, parts.regions, None,
                          parts.sampler.train_area, parts.held_pixels, notices=parts.notices)
        if parts.regions:
            problem.val_inputs, problem.val_data = self._blind_spot_validation(parts.inputs, parts.invalid,
                                                                               parts.regions, meta)
            problem.val_size = sum(int(use.sum()) for use, _ in problem.val_data)
            problem.select_best = False
        return problem

    def _blind_spot_validation(self, inputs, invalid, regions, meta):
        """Masked copies of the held-apart samples, and per box the mask and the original values."""
        vrng = np.random.default_rng(12345)
        val_inputs, data = {}, []
        for r in regions:
            sample = torch.from_numpy(np.ascontiguousarray(inputs[r.sample][None]))
            own = slice(*meta["own"])
            inside = torch.zeros(sample.shape, dtype=torch.bool)
            inside[(slice(None), own, *r.box)] = True
            masked, mask = mask_batch(sample, VAL_MASK_FRACTION, vrng, meta["radius"], meta["replace"], inside)
            val_inputs[r.sample] = masked[0].numpy()
            crop = (own, *r.box)
            truth = inputs[r.sample][crop]
            use = mask[0].numpy()[crop]
            if invalid is not None:
                use &= ~invalid[r.sample][crop]
            data.append((use, truth[use]))
        return val_inputs, data

    def prepare_batch(self, x, y, rng, meta):
        lo, hi = meta.get("own", (0, x.shape[1]))
        if (lo, hi) == (0, x.shape[1]):
            masked, mask = mask_batch(x, meta["mask_fraction"], rng, meta["radius"], meta["replace"])
            return masked, (y, mask)
        # temporal context: only frame t is masked; its neighbours carry independent noise
        masked, mask = mask_batch(x[:, lo:hi], meta["mask_fraction"], rng, meta["radius"], meta["replace"])
        x = x.clone()
        x[:, lo:hi] = masked
        return x, (y, mask)

    def loss(self, logits, target, meta):
        y, mask = target
        return masked_mse(logits, y, mask)

    def validate(self, problem, predictions):
        if problem.val_inputs is None:
            return self._psnr_validation(problem, predictions)
        se, n = 0.0, 0
        for (use, truth), pred in zip(problem.val_data, predictions):
            se += float(np.sum((pred[use].astype(np.float64) - truth) ** 2))
            n += int(use.sum())
        loss = se / max(n, 1)
        return {"blind_spot_loss": loss}, -loss
