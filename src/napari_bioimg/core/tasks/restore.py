"""Supervised image-to-image tasks: restoration from pairs and autoencoder reconstruction.

Both predict an image as :class:`~.dense.ImageTask` does (the network's
normalised output mapped back to the intensities of the image being predicted).
"""

from __future__ import annotations

from ..data.patches import PatchSampler
from ..data.targets import ImageTargets
from ..errors import InputError
from ..settings.defaults import network_width
from .base import Problem, check_task_config
from .denoise import (
    VAL_MAX_PIXELS,
    held_apart_boxes,
    held_mask,
    image_patch,
    pixel_loss,
    reference_crops,
    require_signal,
    training_targets,
)
from .dense import ImageTask
from .sets import Crops, require_set_signal, set_parts


class RestoreTask(ImageTask):
    """Supervised restoration (CARE-style) from the image and a clean target of the same pixels.

    The target is normalised with the image's percentiles (not its own), so the
    network also learns any gain or offset between the two acquisitions and its
    output comes back in the target's intensities. Option ``l1`` (1: L1 loss,
    default 0: MSE). Validation: PSNR against the target on held-apart boxes.
    """

    name = "restore"
    description = "Restoration from pairs: the noisy image and a clean (or high-SNR) target of the same pixels"
    inputs = ("image", "target")
    options = {"l1": (0, 1)}
    result_label = "restored"
    default_learning_rate = 4e-3

    def default_model_config(self, spatial_dims, device_type="cpu", model=None):
        width = network_width(device_type)
        if model == "autoencoder":
            return {"depth": 2, "base_channels": width, "latent_channels": 64}
        if model in (None, "unet", "unet-gru"):
            return {"depth": 2, "base_channels": width}
        return {}

    def make_problem(self, inputs, annotations, config, rng, divisor, extra=None):
        extra = extra or {}
        opts = check_task_config(dict(config.task_config), self.options)
        target = extra.get("target")
        if target is None:
            raise InputError("task 'restore' needs a target: a clean (or high-SNR) image of the same pixels")
        invalid = extra.get("invalid")
        require_signal(target, what="target")
        meta = {"l1": bool(opts.get("l1", 0.0) >= 0.5)}
        regions = held_apart_boxes(inputs.shape, config.val_fraction, VAL_MAX_PIXELS[inputs.ndim - 2])
        held = held_mask(inputs.shape, regions)
        targets = training_targets(target, invalid, held)  # target NaN stay NaN: ignored too
        patch = self._patch(config, inputs.shape[2:], divisor)
        sampler = PatchSampler(inputs, targets, None, patch, rng, augment=config.augment)
        problem = Problem(self, inputs, sampler, target.shape[1], meta, regions, None,
                          int((~held).sum()), int(held.sum()))
        if regions:
            problem.val_data = reference_crops(target, regions)
        return problem

    def make_dataset_problem(self, ds, config, rng, divisor):
        opts = check_task_config(dict(config.task_config), self.options)
        with_target = [i for i, s in enumerate(ds.samples) if s.target is not None]
        if not with_target:
            raise InputError("task 'restore' needs a target for at least one image: a clean (or high-SNR) image of "
                             "the same pixels")
        if config.temporal_context:
            raise InputError("temporal context trains on one time-lapse at a time; set it to 0")
        parts = set_parts(ds, config, rng, ImageTargets(needs="target", focus=False), image_patch(ds, config, divisor),
                          margin=self.val_margin, budget=VAL_MAX_PIXELS[ds.spatial_dims])
        problem = Problem(self, None, parts.sampler, ds.n_channels, {"l1": bool(opts.get("l1", 0.0) >= 0.5)},
                          parts.regions, None, parts.sampler.train_area, parts.held_pixels, notices=parts.notices,
                          val_inputs=parts.inputs)
        if parts.regions:
            problem.val_data = reference_crops(parts.targets, parts.regions)
        return problem

    def loss(self, logits, target, meta):
        return pixel_loss(logits, target, l1=bool(meta.get("l1")))

    def validate(self, problem, predictions):
        return self._psnr_validation(problem, predictions)


class ReconstructTask(ImageTask):
    """Plain autoencoder training: reproduce the input through the bottleneck (MSE).

    Useful for compression and to learn latent features (``AutoEncoder.encode``).
    Validation: PSNR of the reconstruction on held-apart boxes.
    """

    name = "reconstruct"
    description = "Autoencoder reconstruction (MSE): learns a compact latent representation of the image"
    default_model = "autoencoder"
    result_label = "reconstructed"

    def pretrain_refusal(self) -> str | None:
        return "is self-supervised already"

    def make_problem(self, inputs, annotations, config, rng, divisor, extra=None):
        extra = extra or {}
        check_task_config(dict(config.task_config), self.options)
        invalid = extra.get("invalid")
        frame = inputs[:, self._own_channels(inputs, config)]
        require_signal(frame, invalid)
        regions = held_apart_boxes(inputs.shape, config.val_fraction, VAL_MAX_PIXELS[inputs.ndim - 2])
        held = held_mask(inputs.shape, regions)
        targets = training_targets(frame, invalid, held)
        patch = self._patch(config, inputs.shape[2:], divisor)
        sampler = PatchSampler(inputs, targets, None, patch, rng, augment=config.augment)
        problem = Problem(self, inputs, sampler, frame.shape[1], {}, regions, None,
                          int((~held).sum()), int(held.sum()))
        if regions:
            problem.val_data = reference_crops(frame, regions)
        return problem

    def make_dataset_problem(self, ds, config, rng, divisor):
        check_task_config(dict(config.task_config), self.options)
        if config.temporal_context:
            raise InputError("temporal context trains on one time-lapse at a time; set it to 0")
        require_set_signal(ds)
        split = ds.split(config.val_fraction, needs="image", whole=False, max_regions=4,
                         max_region_pixels=VAL_MAX_PIXELS[ds.spatial_dims] // 4)
        parts = set_parts(ds, config, rng, ImageTargets(needs="image"), image_patch(ds, config, divisor),
                          margin=self.val_margin, split=split)
        problem = Problem(self, None, parts.sampler, ds.n_channels, {}, parts.regions, None,
                          parts.sampler.train_area, parts.held_pixels, notices=parts.notices,
                          val_inputs=parts.inputs)
        if parts.regions:
            # NaN where the image was not finite: ignored by PSNR as by the loss
            refs = {k: v.copy() for k, v in parts.inputs.items()}
            for k, bad in (parts.invalid or {}).items():
                refs[k][bad] = float("nan")
            problem.val_data = reference_crops(Crops(refs), parts.regions)
        return problem

    def loss(self, logits, target, meta):
        return pixel_loss(logits, target)

    def validate(self, problem, predictions):
        return self._psnr_validation(problem, predictions)
