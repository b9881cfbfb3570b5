"""Object embeddings: a feature vector and a 2D map position for every object of a label image.

Two sources of features:

* ``autoencoder`` (self-supervised, the default): a small convolutional autoencoder
  is trained for a few seconds to reproduce the objects' crops (image channels plus
  the object's mask, as the classify task cuts them); an object's features are its
  latent map, mean- and max-pooled, averaged over the four 90-degree turns of the
  crop (so an object and its rotated twin land on the same point).
* ``classifier``: the penultimate layer (pooled features before the linear head)
  of a trained ``classify`` model, on the crops that model was trained on.

The features are then reduced to 2D (:func:`.reduce.reduce_2d`: PCA, or UMAP when
installed). Like training, :func:`embed_objects` is a generator of progress events
(``StepDone`` while the autoencoder trains, ``PredictProgress`` while objects are
encoded) that returns an :class:`Embedding`; :func:`embed_objects_sync` drains it.
Memory stays bounded: at most ``max_train_objects`` crops are held for training
and the rest are cut and encoded chunk by chunk.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..control import ActiveClock, Control, drain, run_clocked
from ..data.objects import ObjectTable, choose_crop, object_crops
from ..errors import ConfigError, InputError
from ..events import Notice, PredictProgress, StepDone
from ..models.layers import pad_to_multiple
from ..settings.embed import EmbedConfig
from .inputs import prepare_for_model, prepare_objects
from .reduce import pca, reduce_2d, standardize, umap_available

MAX_EMBED_CROP = {2: (32, 32), 3: (16, 32, 32)}
"""Largest autoencoder crop: enough for shape and texture, small enough for 10k objects in seconds."""
CHUNK = 512
"""Objects cut and encoded at a time."""
SOURCES = ("autoencoder", "classifier")


@dataclass
class Embedding:
    """Per object: its features, its 2D map position and where it is."""

    ids: np.ndarray
    """Label ids ``(M,)``, ascending."""
    features: np.ndarray
    """``(M, K)`` float32 feature vectors."""
    coords: np.ndarray
    """``(M, 2)`` float32 positions on the 2D map."""
    reduction: str
    """``"pca"`` or ``"umap"``."""
    source: str
    """``"autoencoder"`` or ``"classifier"``."""
    table: ObjectTable
    """Where each object is (sample, centre, extent, area)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Training steps and seconds, crop size, zoom, timings."""

    def columns(self, id_name: str = "label_id") -> dict[str, Any]:
        """``{id_name, emb_0 .. emb_{K-1}, x2d, y2d}`` as arrays (a CSV, or a layer's features)."""
        out: dict[str, Any] = {id_name: self.ids.astype(np.int64)}
        for k in range(self.features.shape[1]):
            out[f"emb_{k}"] = self.features[:, k]
        out["x2d"], out["y2d"] = self.coords[:, 0], self.coords[:, 1]
        return out


def _turns(x: torch.Tensor) -> list[torch.Tensor]:
    """The crop and its 90-degree turns in YX (square crops), or its flips (others); contiguous copies."""
    dims = (x.ndim - 2, x.ndim - 1)
    if x.shape[-1] == x.shape[-2]:
        views = [torch.rot90(x, k, dims) if k else x for k in range(4)]
    else:
        views = [x, x.flip(x.ndim - 1), x.flip(x.ndim - 2), x.flip(x.ndim - 1).flip(x.ndim - 2)]
    return [v.contiguous() for v in views]


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The same random turn / flip for the whole batch (cheap, and enough variety over many steps)."""
    options = _turns(x)
    x = options[int(torch.randint(len(options), (1,), generator=gen))]
    if bool(torch.randint(2, (1,), generator=gen)):
        x = x.flip(x.ndim - 1)
    return x


def _pool(h: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(B, C, *S)`` -> ``(B, 2C)``: the mean over the object's own positions and the max over the crop."""
    w = F.adaptive_avg_pool2d(weights, h.shape[2:]) if h.ndim == 4 else F.adaptive_avg_pool3d(weights, h.shape[2:])
    w = w.flatten(1)
    w = w / w.sum(dim=1, keepdim=True).clamp(min=1e-6)
    flat = h.flatten(2)
    return torch.cat([(flat * w[:, None]).sum(dim=2), flat.amax(dim=2)], dim=1)


def autoencoder_features(encoder: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Features of crops ``x`` (image channels + the object's mask last) from an autoencoder's encoder.

    Every level of the encoder (each conv block and the latent) is pooled: the mean
    over the object's own pixels (its mask, scaled to the level) and the max over
    the crop, so that both the object and its surroundings count and texture at
    several scales is kept. Averaged over the four 90-degree turns of the crop.
    ``(B, sum over levels of 2 * channels)``.
    """
    out: torch.Tensor | float = 0.0
    views = _turns(x)
    for v in views:
        mask = v[:, -1:]
        h, feats = v, []
        for module in encoder:
            h = module(h)
            if isinstance(module, torch.nn.Sequential) or module is encoder[-1]:
                feats.append(_pool(h, mask))
        out = out + torch.cat(feats, dim=1)
    return out / len(views)


def embed_objects(
    image: Any,
    labels: Any,
    config: EmbedConfig | None = None,
    *,
    axes: str | None = None,
    classifier: Any = None,
    control: Control | None = None,
    rgb: bool = False,
    axes_hint: str | None = None,
) -> Generator[Any, None, Embedding | None]:
    """Embed every object of ``labels`` (a label image of ``image``'s pixels, without its channel axis).

    Parameters
    ----------
    image, labels
        The image (any layout the engine reads, e.g. ``YX``, ``ZYX``, ``TYX``, ``YXC``)
        and its objects (0 = background).
    config
        :class:`EmbedConfig` (defaults: a 20 s autoencoder, UMAP when installed).
    classifier
        A ``classify`` model (file, checkpoint dict or loaded model): use its
        penultimate features instead of training an autoencoder.
    control
        :meth:`Control.stop` ends autoencoder training early (the model so far
        embeds the objects); a stop while encoding returns ``None``.

    Returns
    -------
    Embedding, or ``None`` when stopped while encoding.
    """
    clock = ActiveClock()
    return (yield from run_clocked(
        _embed(image, labels, (config or EmbedConfig()).validate(), axes, classifier, control or Control(), rgb,
               axes_hint, clock), clock))


def _embed(image, labels, config, axes, classifier, control, rgb, axes_hint, clock) -> Generator:
    from ..runtime.device import resolve_device

    device = resolve_device(config.device)
    t0 = time.perf_counter()
    if config.reduction == "umap" and not umap_available():
        raise ConfigError("UMAP needs the optional package umap-learn (pip install umap-learn); or choose PCA")
    if classifier is not None:
        encode, layout, xn, lbl, table, size, zoom, info = _classifier_encoder(classifier, image, labels, axes, rgb,
                                                                           axes_hint, device)
        source = "classifier"
    else:
        layout, xn, lbl, table = prepare_objects(image, labels, axes, config.spatial_dims, rgb, axes_hint, None)
        size, zoom = _crop_geometry(table, config, layout.spatial_dims)
        net, info = yield from _train_autoencoder(xn, lbl, table, size, zoom, config, control, device, clock)
        encoder = _inference_encoder(net)

        @torch.inference_mode()
        def encode(x: torch.Tensor) -> torch.Tensor:
            return autoencoder_features(encoder, pad_to_multiple(x.to(device), 2**config.depth)[0])

        source = "autoencoder"
    # a stop during training ends it early and the model so far embeds the objects; one while encoding cancels
    stopped_in_training = control.stop_requested
    t_encode = time.perf_counter()
    n = len(table)
    chunks = []
    for start in range(0, n, CHUNK):
        if control.stop_requested and not stopped_in_training:
            return None
        rows = np.arange(start, min(n, start + CHUNK))
        crops = object_crops(xn, lbl, table, rows, size, zoom, mask=True)
        chunks.append(encode(torch.from_numpy(crops)).float().cpu().numpy())
        yield PredictProgress(int(rows[-1]) + 1, n, "objects")
    raw = np.concatenate(chunks)
    t_reduce = time.perf_counter()
    # principal component scores of the standardised features: a compact, decorrelated embedding whose first
    # columns carry the most variance (the 2D map is computed from them without re-scaling them)
    features = pca(standardize(raw), min(config.n_features, raw.shape[1]), standardized=True).astype(np.float32)
    method = config.reduction
    if method == "auto" and not umap_available():
        method = "pca"
    coords, used = reduce_2d(features, method, config.seed, standardized=True)
    t_end = time.perf_counter()
    info.update(crop_size=list(size), zoom=float(zoom), n_objects=int(n), raw_features=int(raw.shape[1]),
                features=int(features.shape[1]),
                encode_seconds=round(t_reduce - t_encode, 3), reduce_seconds=round(t_end - t_reduce, 3),
                total_seconds=round(t_end - t0, 3))
    return Embedding(table.ids.copy(), features, coords, used, source, table, info)


def embed_objects_sync(image, labels, config: EmbedConfig | None = None, callback=None, **kwargs) -> Embedding:
    """Run :func:`embed_objects` to the end (scripts, tests); ``callback`` sees each event."""
    return drain(embed_objects(image, labels, config, **kwargs), callback)


def _crop_geometry(table: ObjectTable, config: EmbedConfig, spatial_dims: int) -> tuple[tuple[int, ...], float]:
    if config.crop_size is None:
        size, zoom = choose_crop(table.extent, MAX_EMBED_CROP[spatial_dims])
        side = max(size[-2:])  # square in YX, so that the four turns of a crop are crops of the same size
        return (*size[:-2], side, side), zoom
    req = (config.crop_size,) * spatial_dims if isinstance(config.crop_size, int) else tuple(config.crop_size)
    if len(req) == 1:
        req = req * spatial_dims
    if len(req) != spatial_dims or any(not 8 <= int(s) <= 256 for s in req):
        raise ConfigError(f"crop_size must be {spatial_dims} value(s) between 8 and 256, got {config.crop_size}")
    return tuple(int(s) for s in req), 1.0


def _inference_encoder(net: torch.nn.Module) -> torch.nn.Module:
    """A copy of the trained encoder prepared for inference (batch-norm folded into the convolutions)."""
    from ..runtime.fast import fold_batchnorm

    encoder = copy.deepcopy(net.encoder).eval()
    fold_batchnorm(encoder)
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder


def _train_autoencoder(xn, lbl, table, size, zoom, config: EmbedConfig, control: Control, device, clock
                       ) -> Generator[Any, None, tuple[torch.nn.Module, dict]]:
    """Train an autoencoder on (a random subset of) the objects' crops; returns it in eval mode and a summary.

    The weights start from the seed; the process's random streams are left as they were."""
    from ..runtime.context import torch_random

    with torch_random(config.seed):
        return (yield from _fit_autoencoder(xn, lbl, table, size, zoom, config, control, device, clock))


def _fit_autoencoder(xn, lbl, table, size, zoom, config: EmbedConfig, control: Control, device, clock
                     ) -> Generator[Any, None, tuple[torch.nn.Module, dict]]:
    from ..models import get_model

    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(0 if config.seed is None else int(config.seed))
    n = len(table)
    rows = np.sort(rng.choice(n, config.max_train_objects, replace=False)) if n > config.max_train_objects \
        else np.arange(n)
    crops = torch.from_numpy(object_crops(xn, lbl, table, rows, size, zoom, mask=True))
    if n > config.max_train_objects:
        yield Notice(f"the autoencoder trains on {len(rows)} of the {n} objects (a random subset); all are embedded",
                     "info")
    spatial_dims = xn.ndim - 2
    net = get_model("autoencoder", spatial_dims=spatial_dims, in_channels=crops.shape[1],
                    out_channels=crops.shape[1], depth=config.depth, base_channels=config.base_channels,
                    latent_channels=config.latent_channels, norm="batch", pool="max").to(device)
    opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    batch = min(config.batch_size, max(2, len(rows)))
    clock.reset()
    step, losses = 0, []

    def used() -> float:
        return max(clock.elapsed() / config.time_limit if config.time_limit else 0.0,
                   step / config.steps if config.steps else 0.0)

    net.train()
    while used() < 1.0 and not control.stop_requested:
        fraction = used()
        for g in opt.param_groups:  # short warm-up, then cosine decay over the budget
            g["lr"] = config.learning_rate * min(1.0, (step + 1) / 10) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * fraction)))
        idx = torch.randint(len(crops), (batch,), generator=gen)
        xb = _augment(crops[idx], gen).contiguous().to(device)
        loss = torch.nn.functional.mse_loss(net(xb), xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(float(loss.detach()))
        elapsed = clock.elapsed()
        fraction = min(1.0, used())
        eta = (1 - fraction) / max(fraction, 1e-9) * elapsed if fraction > 0 else None
        yield StepDone(step, 0, losses[-1], opt.param_groups[0]["lr"], elapsed, fraction, eta,
                       step / max(elapsed, 1e-9))
    if step == 0:
        raise InputError("embedding stopped before the autoencoder trained a single step")
    info = {"steps": step, "train_seconds": round(clock.elapsed(), 3),
            "last_loss": float(np.mean(losses[-20:])), "train_objects": int(len(rows)),
            "stopped_early": control.stop_requested}
    return net.eval(), info


def _classifier_encoder(classifier, image, labels, axes, rgb, axes_hint, device):
    """A classify model's penultimate features as the encoder, with that model's crops and normalisation."""
    from ..formats.loading import load_model

    loaded = load_model(classifier, device)
    if not loaded.task.classifies_objects:
        raise InputError(f"the model was trained for {loaded.task.name!r}; embedding by a classifier needs a "
                         "'classify' model (or leave the model out to train an autoencoder)")
    net = loaded.model.eval()
    if not hasattr(net, "features"):
        raise InputError("this classifier does not expose its penultimate features; use the autoencoder instead")
    layout, xn, lbl, table = prepare_for_model(loaded, image, labels, axes, rgb, axes_hint)
    meta = loaded.meta

    @torch.no_grad()
    def encode(x: torch.Tensor) -> torch.Tensor:
        return net.features(x.to(loaded.device))

    info = {"classifier_classes": list(meta.get("class_names", []))}
    return encode, layout, xn, lbl, table, tuple(meta["crop_size"]), float(meta["zoom"]), info
