"""Percentile normalisation, stored with the model so prediction matches training."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InputError
from ..settings.defaults import PERCENTILES

#: Above this many values per channel, percentiles are estimated on a random subsample.
MAX_PERCENTILE_SAMPLES = 2_000_000


def _subsample(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flat = values.reshape(-1)
    if flat.size > MAX_PERCENTILE_SAMPLES:
        flat = flat[rng.integers(0, flat.size, MAX_PERCENTILE_SAMPLES)]
    return flat


@dataclass
class Normalizer:
    """``(x - p_low) / (p_high - p_low)`` per channel.

    Parameters
    ----------
    p_low, p_high
        Percentiles (0..100); :data:`~..settings.defaults.PERCENTILES` by default.
    mode
        ``"per_image"`` recomputes the percentiles on each image given to
        :meth:`apply` (robust to exposure changes between acquisitions);
        ``"fixed"`` reuses the values fitted on the training image.
    """

    p_low: float = PERCENTILES[0]
    p_high: float = PERCENTILES[1]
    mode: str = "per_image"
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 <= self.p_low < self.p_high <= 100:
            raise InputError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.p_low}, {self.p_high}")
        if self.mode not in ("per_image", "fixed"):
            raise InputError(f"normalisation mode must be 'per_image' or 'fixed', got {self.mode!r}")

    def percentiles(self, x: np.ndarray, seed: int = 0) -> tuple[list[float], list[float]]:
        """Per-channel (low, high) of an array shaped ``(N, C, *spatial)``."""
        rng = np.random.default_rng(seed)
        return self.percentiles_of([_subsample(np.asarray(x[:, c]), rng) for c in range(x.shape[1])])

    def percentiles_of(self, channels: list[np.ndarray]) -> tuple[list[float], list[float]]:
        """Per-channel (low, high) of the values gathered for each channel (NaN/inf left out)."""
        lows, highs = [], []
        for c, values in enumerate(channels):
            values = np.asarray(values, dtype=np.float64).ravel()
            values = values[np.isfinite(values)]
            if values.size == 0:
                raise InputError(f"channel {c} has no finite pixel values (all NaN or inf)")
            lo, hi = np.percentile(values, [self.p_low, self.p_high])
            lows.append(float(lo))
            highs.append(float(hi))
        return lows, highs

    def fit(self, x: np.ndarray) -> Normalizer:
        self.low, self.high = self.percentiles(x)
        return self

    def ranges(self, x: np.ndarray, refit: bool | None = None) -> tuple[list[float], list[float]]:
        """The per-channel (low, high) that :meth:`apply` uses for ``x``.

        Image-to-image tasks pass them to :meth:`invert` to bring results back to
        the intensities of the very image that was normalised.
        """
        refit = self.mode == "per_image" if refit is None else refit
        if refit or not self.low:
            return self.percentiles(x)
        return list(self.low), list(self.high)

    def apply(self, x: np.ndarray, refit: bool | None = None,
              ranges: tuple[list[float], list[float]] | None = None) -> np.ndarray:
        """Normalise ``(N, C, *spatial)`` to float32; NaN/inf become the low value (0).

        ``ranges`` (from :meth:`ranges`) skips recomputing the percentiles.
        """
        low, high = ranges if ranges is not None else self.ranges(x, refit)
        if len(low) != x.shape[1]:
            raise InputError(f"the model expects {len(low)} channel(s) but the image has {x.shape[1]}")
        out = np.empty(x.shape, dtype=np.float32)
        for c in range(x.shape[1]):
            scale = high[c] - low[c]
            if not scale > 1e-12:  # constant channel: keep it finite rather than blow up
                scale = max(abs(high[c]), 1.0)
            out[:, c] = (np.asarray(x[:, c], dtype=np.float32) - np.float32(low[c])) / np.float32(scale)
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return out

    def invert(self, y: np.ndarray, channel_axis: int = 1, low=None, high=None) -> np.ndarray:
        """Map normalised values back to the image's intensity range."""
        low = self.low if low is None else low
        high = self.high if high is None else high
        shape = [1] * y.ndim
        shape[channel_axis] = len(low)
        lo = np.asarray(low, dtype=np.float32).reshape(shape)
        scale = np.asarray(high, dtype=np.float32).reshape(shape) - lo
        scale = np.where(scale > 1e-12, scale, np.maximum(np.abs(lo), 1.0))
        return y * scale + lo

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        return cls(**{k: d[k] for k in ("p_low", "p_high", "mode", "low", "high") if k in d})


def count_nonfinite(x: np.ndarray) -> int:
    """Number of NaN/inf values (0 for integer arrays, without a float copy)."""
    if not np.issubdtype(np.asarray(x).dtype, np.floating):
        return 0
    return int(x.size - np.count_nonzero(np.isfinite(x)))
