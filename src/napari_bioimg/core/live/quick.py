"""A fast pixel classifier for the first live previews, before the network has learnt anything.

ilastik-style: a few filters at several scales (smoothed intensity, gradient
magnitude, Laplacian of Gaussian, per channel) are computed once per previewed
sample; a small neural network on those features (one hidden layer) is fitted to
the painted pixels in a fraction of a second and predicts every pixel. Live training
shows its result until the U-Net predicts newly painted strokes better
(:class:`Referee`), and again for a while after a new class appears.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
from scipy import ndimage as ndi

#: Gaussian scales (pixels) of the filter features.
SIGMAS = (1.0, 2.0, 4.0, 8.0)
#: Painted pixels the classifier fits on at most (the same number per class where a class has that many).
MAX_PIXELS = 12_000
#: Full-batch optimiser steps per fit.
FIT_STEPS = 120
HIDDEN = 24


def pixel_features(image: np.ndarray) -> np.ndarray:
    """``(C, *spatial)`` normalised image -> ``(F, *spatial)`` float32 features, each scaled to unit spread."""
    feats = []
    for channel in np.asarray(image, np.float32):
        feats.append(channel)
        for s in SIGMAS:
            feats.append(ndi.gaussian_filter(channel, s))
            feats.append(ndi.gaussian_gradient_magnitude(channel, s))
            feats.append(ndi.gaussian_laplace(channel, s))
    out = np.stack(feats).astype(np.float32)
    flat = out.reshape(len(out), -1)
    mean, std = flat.mean(1), flat.std(1) + 1e-6
    return (out - mean.reshape((-1,) + (1,) * (out.ndim - 1))) / std.reshape((-1,) + (1,) * (out.ndim - 1))


class PixelClassifier:
    """A one-hidden-layer network on :func:`pixel_features` of one sample, refitted on each change of strokes."""

    def __init__(self, image: np.ndarray, seed: int = 0):
        self.features = torch.from_numpy(pixel_features(image))
        self.flat = self.features.reshape(len(self.features), -1).T  # (pixels, F)
        self.rng = np.random.default_rng(seed)
        self.classes: np.ndarray | None = None
        self.net: torch.nn.Module | None = None
        self.labels: np.ndarray | None = None  # the last prediction of every pixel (class ids)

    def fit(self, labels: np.ndarray) -> bool:
        """Fit to the painted pixels of ``labels`` (the sample's spatial shape; 0 = not painted).

        Returns whether a classifier could be fitted (at least two classes painted).
        """
        y = np.asarray(labels).ravel()
        classes = np.unique(y[y > 0])
        if len(classes) < 2:
            return False
        per_class = MAX_PIXELS // len(classes)
        picked = []
        for c in classes:
            where = np.flatnonzero(y == c)
            picked.append(where if len(where) <= per_class else self.rng.choice(where, per_class, replace=False))
        idx = np.concatenate(picked)
        x = self.flat[torch.from_numpy(idx)]
        target = torch.from_numpy(np.searchsorted(classes, y[idx]))
        weight = torch.tensor([1.0 / len(p) for p in picked], dtype=torch.float32)  # classes count alike
        gen = torch.Generator().manual_seed(int(self.rng.integers(1 << 31)))
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], HIDDEN), torch.nn.ReLU(),
                                  torch.nn.Linear(HIDDEN, len(classes)))
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / np.sqrt(max(p.shape[-1], 1))))
        _fit_adam(net, lambda: torch.nn.functional.cross_entropy(net(x), target, weight=weight), FIT_STEPS)
        self.net, self.classes = net.eval(), classes
        self.labels = self.predict_labels(tuple(slice(0, n) for n in labels.shape))
        return True

    @torch.no_grad()
    def probabilities(self, box: tuple[slice, ...]) -> np.ndarray:
        """``(K, *box)`` class probabilities (classes :attr:`classes`) inside ``box`` of the sample."""
        f = self.features[(slice(None), *box)]
        shape = f.shape[1:]
        p = torch.softmax(self.net(f.reshape(len(f), -1).T), dim=1).T
        return p.reshape(len(self.classes), *shape).numpy()

    def predict_labels(self, box: tuple[slice, ...]) -> np.ndarray:
        """Class ids inside ``box``."""
        return self.classes[self.probabilities(box).argmax(0)].astype(np.uint8 if self.classes.max() < 256 else np.uint16)

    def full_probabilities(self, box: tuple[slice, ...], n_classes: int) -> np.ndarray:
        """``(n_classes, *box)`` probabilities in class-id order 1..n_classes (absent classes 0)."""
        p = self.probabilities(box)
        full = np.zeros((n_classes, *p.shape[1:]), np.float32)
        full[self.classes - 1] = p
        return full


def _fit_adam(net: torch.nn.Module, loss_fn, steps: int, lr: float = 0.03) -> None:
    """Adam, written out: ``torch.optim``'s first use imports a good part of torch (seconds on a busy CPU), which the
    first preview cannot wait for."""
    params = list(net.parameters())
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    b1, b2 = 0.9, 0.999
    with torch.enable_grad():
        for t in range(1, steps + 1):
            grads = torch.autograd.grad(loss_fn(), params)
            with torch.no_grad():
                for p, g, mi, vi in zip(params, grads, m, v):
                    mi.mul_(b1).add_(g, alpha=1 - b1)
                    vi.mul_(b2).addcmul_(g, g, value=1 - b2)
                    step = lr * (1 - b2 ** t) ** 0.5 / (1 - b1 ** t)
                    p.addcdiv_(mi, vi.sqrt().add_(1e-8), value=-step)


class Referee:
    """Which of the two predicts new strokes better: each stroke is scored before anything trains on it.

    ``score(new, quick, network)`` takes the newly painted values and both predictions at those pixels
    (``None`` where a prediction is missing); the network takes over once it got at least as many of the
    last strokes' pixels right as the pixel classifier, over at least ``min_pixels``.
    """

    def __init__(self, window: int = 8, min_pixels: int = 20):
        self.window, self.min_pixels = window, min_pixels
        self.tally: deque = deque(maxlen=window)

    def score(self, new: np.ndarray, quick: np.ndarray | None, network: np.ndarray | None) -> None:
        painted = new > 0
        if quick is None or network is None or not painted.any():
            return
        self.tally.append((int(painted.sum()), int((quick[painted] == new[painted]).sum()),
                           int((network[painted] == new[painted]).sum())))

    def network_wins(self) -> bool:
        if not self.tally:
            return False
        n, quick, network = (sum(t[i] for t in self.tally) for i in range(3))
        return n >= self.min_pixels and network >= quick

    def restart(self) -> None:
        self.tally.clear()
