"""Why did the classifier say that? Grad-CAM maps per object, confidence and margin.

Grad-CAM (Selvaraju et al. 2017): for an object's crop, the activations ``A`` of a
convolutional stage are weighted by the mean gradient of the predicted class's
score with respect to each channel, summed over channels and rectified:
``relu(sum_c mean(dS/dA_c) * A_c)``. The map, upsampled to the crop and scaled to
``[0, 1]`` per object, says which parts of the crop raised the score of the class
the model chose. :func:`explain_objects` pastes each object's map back into the
image, on that object's own pixels (where the same id spans several frames or
slices, on the one where it is largest, as the classifier saw it), so the result
overlays the objects layer.

Maps can look plausible and still mean nothing. Two checks (tests, and
``benchmarks/experiments/explain_sanity.py``): Adebayo et al. (2018)'s *model randomisation*
test — re-initialising the weights must change the maps (:func:`randomized_copy`,
:func:`rank_correlation`) — and synthetic objects whose class is decided by a
known part, where the map must weigh that part more than the rest of the object.
"""

from __future__ import annotations

import copy
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..control import Control, drain
from ..data.objects import object_crops
from ..errors import InputError
from ..events import PredictProgress
from .inputs import prepare_for_model

CHUNK = 128


@dataclass
class Explanation:
    """Per object: the predicted class, how sure the model is, and the assembled Grad-CAM image."""

    ids: np.ndarray
    index: np.ndarray
    """Predicted class index per object."""
    probabilities: np.ndarray
    """``(M, K)`` softmax probabilities."""
    class_names: list
    image: np.ndarray
    """Float32 map in ``[0, 1]`` with the objects layer's shape (0 outside objects)."""
    maps: np.ndarray | None = None
    """``(M, *crop)`` per-object maps in crop pixels (when asked for)."""

    @property
    def confidence(self) -> np.ndarray:
        """Probability of the predicted class."""
        return self.probabilities.max(axis=1) if len(self.ids) else np.zeros(0)

    @property
    def margin(self) -> np.ndarray:
        """Top probability minus the runner-up's (0 = a toss-up, 1 = certain)."""
        if not len(self.ids):
            return np.zeros(0)
        top2 = np.sort(self.probabilities, axis=1)[:, -2:]
        return top2[:, -1] - (top2[:, 0] if self.probabilities.shape[1] > 1 else 0.0)

    @property
    def classes(self) -> list:
        return [self.class_names[i] for i in self.index]

    def columns(self, id_name: str = "label_id") -> dict[str, Any]:
        """``{id_name, class_predicted, confidence, margin}`` (a CSV, or a layer's features)."""
        return {id_name: self.ids.astype(np.int64), "class_predicted": [str(c) for c in self.classes],
                "confidence": np.round(self.confidence, 4), "margin": np.round(self.margin, 4)}


def cam_layer(model: nn.Module, layer: int | nn.Module | None = None) -> nn.Module:
    """The stage whose activations Grad-CAM weighs: ``model.stages[layer]`` (default the last), or a module."""
    if isinstance(layer, nn.Module):
        return layer
    stages = getattr(model, "stages", None)
    if stages is None:
        raise InputError("Grad-CAM needs a classifier built of convolutional stages (the cnn / resnet families)")
    return stages[-1 if layer is None else int(layer)]


def gradcam(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None,
            layer: int | nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM maps of a batch.

    Parameters
    ----------
    model
        A classifier in eval mode, ``(B, C, *S) -> (B, K)`` logits.
    x
        Input batch.
    target
        Class index per item to explain (default: the predicted class).
    layer
        Stage index or module (see :func:`cam_layer`).

    Returns
    -------
    maps, logits
        ``(B, *S)`` maps in ``[0, 1]`` (each item scaled by its maximum; all 0 when
        nothing raised the score) and the ``(B, K)`` logits.
    """
    module = cam_layer(model, layer)
    store: dict[str, torch.Tensor] = {}
    handle = module.register_forward_hook(lambda m, i, out: store.__setitem__("a", out))
    try:
        with torch.enable_grad():
            logits = model(x.detach().clone().requires_grad_(True))
            idx = logits.argmax(dim=1) if target is None else target.to(logits.device)
            score = logits.gather(1, idx[:, None]).sum()
            acts = store["a"]
            (grads,) = torch.autograd.grad(score, acts)
    finally:
        handle.remove()
    weights = grads.flatten(2).mean(dim=2)  # (B, C)
    cam = F.relu((weights.view(*weights.shape, *[1] * (acts.ndim - 2)) * acts).sum(dim=1, keepdim=True))
    mode = "bilinear" if cam.ndim == 4 else "trilinear"
    cam = F.interpolate(cam, size=x.shape[2:], mode=mode, align_corners=False)[:, 0]
    top = cam.flatten(1).amax(dim=1).clamp(min=1e-12)
    cam = cam / top.view(-1, *[1] * (cam.ndim - 1))
    return cam.detach(), logits.detach()


def explain_objects(
    model: Any,
    image: Any,
    labels: Any,
    *,
    axes: str | None = None,
    rgb: bool = False,
    axes_hint: str | None = None,
    layer: int | None = None,
    control: Control | None = None,
    device: str = "auto",
    keep_maps: bool = False,
) -> Generator[Any, None, Explanation | None]:
    """Grad-CAM maps, predicted class, confidence and margin for every object, by a ``classify`` model.

    Parameters
    ----------
    model
        A classify model file (``.pt``), checkpoint dict or loaded model.
    image, labels
        The image (the layout the model was trained on, or ``axes``) and its objects.
    layer
        Classifier stage to explain (default: the last; ``-2`` gives maps twice as fine).
    keep_maps
        Also return the per-object maps in crop pixels.

    Yields ``PredictProgress`` per chunk of objects; returns an :class:`Explanation`
    (``None`` when stopped).
    """
    from ..formats.loading import load_model

    control = control or Control()
    loaded = load_model(model, device)
    if not loaded.task.classifies_objects:
        raise InputError(f"the model was trained for {loaded.task.name!r}: explanations need an object "
                         "classification ('classify') model")
    net = loaded.model.eval()
    layout, xn, lbl, table = prepare_for_model(loaded, image, labels, axes, rgb, axes_hint)
    meta = loaded.meta
    size, zoom = tuple(int(s) for s in meta["crop_size"]), float(meta["zoom"])
    canvas = np.zeros(lbl.shape, dtype=np.float32)
    n = len(table)
    probs, maps = [], []
    for start in range(0, n, CHUNK):
        if control.stop_requested:
            return None
        rows = np.arange(start, min(n, start + CHUNK))
        x = torch.from_numpy(object_crops(xn, lbl, table, rows, size, zoom, mask=True)).to(loaded.device)
        cam, logits = gradcam(net, x, layer=layer)
        cam_np = cam.float().cpu().numpy()
        probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        paste_maps(canvas, lbl, table, rows, cam_np, zoom)
        if keep_maps:
            maps.append(cam_np)
        yield PredictProgress(int(rows[-1]) + 1, n, "objects")
    p = np.concatenate(probs)
    out = layout.from_canonical(canvas)
    return Explanation(ids=table.ids.copy(), index=p.argmax(axis=1), probabilities=p,
                       class_names=list(meta["class_names"]), image=np.ascontiguousarray(out),
                       maps=np.concatenate(maps) if keep_maps else None)


def explain_objects_sync(model, image, labels, callback=None, **kwargs) -> Explanation:
    """Run :func:`explain_objects` to the end (scripts, tests)."""
    return drain(explain_objects(model, image, labels, **kwargs), callback)


def paste_maps(canvas: np.ndarray, labels: np.ndarray, table, rows: np.ndarray, maps: np.ndarray,
               zoom: float) -> None:
    """Write each object's crop map onto its own pixels of ``canvas`` ``(N, *spatial)``, in place.

    The crop was cut around the object's box centre (:func:`..data.objects.object_crops`);
    a shrunk crop (``zoom < 1``) is scaled back up first.
    """
    spatial = labels.shape[1:]
    for k, r in enumerate(rows):
        m = maps[k]
        box = tuple(int(round(s / zoom)) for s in m.shape)
        if box != m.shape:
            mode = "bilinear" if m.ndim == 2 else "trilinear"
            m = F.interpolate(torch.from_numpy(m)[None, None], size=box, mode=mode, align_corners=False)[0, 0].numpy()
        n = int(table.sample[r])
        start = [int(np.floor(c - b / 2.0)) for c, b in zip(table.center[r], box)]
        src = tuple(slice(max(0, a), min(s, a + b)) for a, b, s in zip(start, box, spatial))
        dst = tuple(slice(sl.start - a, sl.stop - a) for sl, a in zip(src, start))
        if any(sl.stop <= sl.start for sl in src):
            continue
        mine = labels[(n, *src)] == table.ids[r]
        region = canvas[(n, *src)]
        region[mine] = m[dst][mine]


def randomized_copy(model: nn.Module, seed: int = 0, last: int | None = None) -> nn.Module:
    """A copy of ``model`` with re-initialised weights (Adebayo et al.'s model randomisation test).

    ``last=None`` re-initialises every layer; ``last=k`` only the ``k`` layers
    nearest the output (the *cascading* variant: 1 = the head). Batch-norm layers get
    fresh statistics too.
    """
    from ..runtime.context import torch_random

    out = copy.deepcopy(model)
    layers = [m for m in out.modules() if hasattr(m, "reset_parameters") and any(True for _ in m.parameters(False))]
    chosen = layers if last is None else layers[len(layers) - last:]
    with torch_random(seed):  # the process's random streams are left as they were
        for m in chosen:
            m.reset_parameters()
            if hasattr(m, "reset_running_stats"):
                m.reset_running_stats()
    return out.eval()


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps (flattened); 0 when either is constant."""
    from scipy.stats import spearmanr

    a, b = np.ravel(a), np.ravel(b)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(spearmanr(a, b)[0])
