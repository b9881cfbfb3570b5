"""Training batches drawn across the images of a :class:`~.dataset.DataSet`, reading only the patches.

Each patch is drawn in two steps: an image (by weight), then a place in it. Most
patches (``focus``) are placed on annotated content: an image is chosen in
proportion to its training annotations times its :attr:`~.dataset.Sample.weight`,
then a cell of its annotation grid in proportion to the annotated pixels it holds,
and the patch is placed anywhere that contains that cell. The others are placed
uniformly, the image chosen in proportion to its training area times its weight.
With ``balance="images"`` every trainable image is drawn equally often (times its
weight), whatever its size: one huge annotated image then does not drown the rest.

Batches follow :class:`~.patches.PatchSampler`'s conventions and augmentation, so a
:class:`DataSetSampler` can stand where a ``PatchSampler`` does (``problem.sampler``).
Images smaller than the patch are padded as :func:`~.patches.pad_to_patch` pads them
(reflected input, ignored targets).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import InputError
from .holdout import Split
from .patches import augment_pair, resize_pair

if TYPE_CHECKING:
    from .imageset import ImageSet
    from .targets import Targets

BALANCES = ("content", "images")


@dataclass(frozen=True)
class PatchRef:
    """Where a patch comes from: image, plane, start and size in the image's (padded) spatial frame."""

    sample: int
    plane: int
    start: tuple[int, ...]
    size: tuple[int, ...]


class _Choice:
    """Draw an index with given non-negative weights in O(log n) (cumulative sums)."""

    def __init__(self, weights: np.ndarray):
        self.cum = np.cumsum(np.asarray(weights, dtype=np.float64))
        self.total = float(self.cum[-1]) if len(self.cum) else 0.0

    def __call__(self, rng: np.random.Generator) -> int:
        return int(np.searchsorted(self.cum, rng.random() * self.total, side="right").clip(0, len(self.cum) - 1))


class DataSetSampler:
    """Random training patches across a data set, read lazily, with augmentation.

    Parameters
    ----------
    dataset
        The images (normalisation fitted with defaults if not yet).
    patch
        Patch size per spatial dim (e.g. from :func:`~.patches.fit_patch` on the
        largest image; smaller images are padded).
    targets
        How targets are made (:mod:`.targets`).
    rng
        Random stream (drawing, zoom and augmentation).
    split
        Held-out parts (:meth:`DataSet.split`): whole images are never drawn, held
        planes and boxes give "ignore" targets.
    augment, rescale, intensity
        As :class:`~.patches.PatchSampler`: flips and turns, random zoom 0.85-1.15,
        gain/offset per patch.
    focus
        Share of patches placed on annotated content (when the targets use it).
    balance
        ``"content"`` (images drawn in proportion to their annotated pixels, or area)
        or ``"images"`` (each image equally often).
    workers
        Threads that read the patches of a batch concurrently (0: the calling thread).
        Reads are mostly waiting (zarr's event loop, files, decompression outside the
        GIL), so a few threads hide most of it; the patches and their order do not
        depend on it (all random draws happen first, in the calling thread).
    """

    def __init__(self, dataset: ImageSet, patch: tuple[int, ...], targets: Targets, rng: np.random.Generator, *,
                 split: Split | None = None, augment: bool = True, focus: float = 0.9, rescale: bool = True,
                 intensity: bool = True, balance: str = "content", workers: int = 4):
        if len(patch) != dataset.spatial_dims:
            raise InputError(f"patch size {tuple(patch)} has {len(patch)} values but the data set is "
                             f"{dataset.spatial_dims}D")
        if balance not in BALANCES:
            raise InputError(f"balance must be one of {', '.join(BALANCES)}, got {balance!r}")
        self.dataset, self.targets, self.rng = dataset, targets, rng
        self.patch = tuple(int(p) for p in patch)
        self.split = split or Split("none")
        self.target_is_index = targets.index
        self.augment, self.rescale, self.intensity = augment, rescale, intensity
        self.focus = float(focus) if targets.focus else 0.0
        self.balance = balance
        self.workers = int(workers)
        self._pool: ThreadPoolExecutor | None = None
        dataset.ranges(0)  # fit the normalisation (if not yet) before reader threads need it
        self._plan()

    # ------------------------------------------------------------------ planning

    def _plan(self) -> None:
        ds, n = self.dataset, len(self.dataset)
        self._held: dict[tuple[int, int], list[tuple[slice, ...]]] = {}
        self._whole = {h.sample for h in self.split.held if h.plane is None}
        for h in self.split.held:  # held boxes by (image, plane): looked up for every patch
            if h.plane is not None:
                self._held.setdefault((h.sample, h.plane), []).append(h.box)
        self.planes: list[np.ndarray] = []
        self.cells: list[tuple[np.ndarray, _Choice] | None] = []
        content = np.zeros(n)
        area = np.zeros(n)
        skipped: list[str] = []
        for i, s in enumerate(ds.samples):
            planes = np.array([p for p in range(ds.n_planes(i)) if not self._plane_held(i, p)], dtype=np.int64)
            reason = self._why_not(i, planes)
            if reason:
                skipped.append(f"{s.name} ({reason})")
                self.planes.append(np.zeros(0, dtype=np.int64))
                self.cells.append(None)
                continue
            self.planes.append(planes)
            stats = ds.label_stats(i) if self.targets.needs == "labels" else None
            cells = None
            if stats is not None:
                grid = stats.grid.copy()
                kept = set(planes.tolist())
                for p in range(len(grid)):
                    if p not in kept:
                        grid[p] = 0
                    for box in self._held.get((i, p), ()):  # cells wholly held out (targets are masked anyway)
                        grid[(p, *(slice(-(-b.start // c), None if b.stop >= e else b.stop // c)
                                   for b, c, e in zip(box, stats.cell, ds.layouts[i].spatial_shape)))] = 0
                flat = np.flatnonzero(grid).astype(np.int32)  # grids hold at most MAX_CELLS cells
                if len(flat):
                    cells = (flat, _Choice(grid.ravel()[flat]))
                    content[i] = float(grid.ravel()[flat].sum())
            self.cells.append(cells)
            area[i] = len(planes) * float(np.prod(ds.layouts[i].spatial_shape))
        weight = np.array([s.weight for s in ds.samples], dtype=np.float64)
        trainable = np.array([len(p) > 0 for p in self.planes])
        if not trainable.any():
            raise InputError("no image is left to train on: " + "; ".join(skipped))
        self.skipped = skipped
        if self.balance == "images":
            self._by_content = _Choice(weight * (content > 0))
            self._by_area = _Choice(weight * trainable)
        else:
            self._by_content = _Choice(weight * content)
            self._by_area = _Choice(weight * area)
        if self._by_content.total <= 0:
            self.focus = 0.0
        if self._by_area.total <= 0:
            raise InputError("every trainable image has weight 0; give at least one a positive weight")
        self.train_content, self.train_area = int(content.sum()), int(area[trainable].sum())
        self._pad_mode = [self._mode(i) for i in range(n)]

    def _plane_held(self, i: int, p: int) -> bool:
        lay = self.dataset.layouts[i]
        full = tuple(slice(0, s) for s in lay.spatial_shape)
        return i in self._whole or any(b == full for b in self._held.get((i, p), ()))

    def _why_not(self, i: int, planes: np.ndarray) -> str:
        s = self.dataset.samples[i]
        if i in self._whole:
            return "held out for validation"
        if not len(planes):
            return "all planes held out for validation"
        if s.weight == 0:
            return "weight 0"
        needs = self.targets.needs
        if needs == "labels" and s.labels is None:
            return "no annotations"
        if needs == "target" and s.target is None:
            return "no target image"
        if needs == "labels" and self.targets.sparse and self.dataset.annotated_pixels(i) == 0:
            return "nothing annotated"
        return ""

    def _mode(self, i: int) -> str:
        """How an image smaller than the patch is padded (as :func:`~.patches.pad_to_patch`)."""
        spatial = self.dataset.layouts[i].spatial_shape
        extra = [max(0, p - s) for p, s in zip(self.patch, spatial)]
        return "reflect" if all(e < s for e, s in zip(extra, spatial)) else "symmetric"

    # ------------------------------------------------------------------ drawing

    def draw(self) -> PatchRef:
        """Choose the next patch (image, plane, box) without reading it."""
        rng = self.rng
        if self.focus > 0 and rng.random() < self.focus:
            i = self._by_content(rng)
            flat, choice = self.cells[i]  # type: ignore[misc]
            stats = self.dataset.label_stats(i)
            assert stats is not None
            where = np.unravel_index(int(flat[choice(rng)]), stats.grid.shape)
            plane, cell = int(where[0]), where[1:]
            starts = []
            for c, size, p, s in zip(cell, stats.cell, self.patch, self.dataset.layouts[i].spatial_shape):
                c0, c1 = int(c) * size, min(s, (int(c) + 1) * size)
                lo, hi = (c1 - p, c0) if p >= c1 - c0 else (c0, c1 - p)
                top = max(s, p) - p
                lo, hi = min(max(lo, 0), top), min(max(hi, 0), top)
                starts.append(int(rng.integers(lo, hi + 1)))
        else:
            i = self._by_area(rng)
            planes = self.planes[i]
            plane = int(planes[rng.integers(len(planes))])
            starts = [int(rng.integers(0, max(s, p) - p + 1))
                      for p, s in zip(self.patch, self.dataset.layouts[i].spatial_shape)]
        scale = float(np.exp(rng.uniform(np.log(0.85), np.log(1.15)))) if self.augment and self.rescale else 1.0
        frame = [max(s, p) for s, p in zip(self.dataset.layouts[i].spatial_shape, self.patch)]
        size = tuple(min(f, max(8, int(round(p * scale)))) for p, f in zip(self.patch, frame))
        start = tuple(min(a, f - z) for a, f, z in zip(starts, frame, size))
        return PatchRef(i, plane, start, size)

    # ------------------------------------------------------------------ reading

    def read(self, ref: PatchRef) -> tuple[np.ndarray, np.ndarray]:
        """The patch's normalised input ``(C, *size)`` and target, unaugmented (numpy)."""
        ds, i, plane = self.dataset, ref.sample, ref.plane
        spatial = ds.layouts[i].spatial_shape
        halo = self.targets.halo
        small = [s < p for s, p in zip(spatial, self.patch)]
        box = tuple(slice(0, s) if sm else slice(max(0, a - halo), min(s, a + z + halo))
                    for a, z, s, sm in zip(ref.start, ref.size, spatial, small))
        needs = self.targets.needs
        image = ds.read_image(i, plane, box, keep_nan=True)
        labels = ds.read_labels(i, plane, box) if needs == "labels" else None
        target = ds.read_target(i, plane, box) if needs == "target" else None
        y = self.targets.make(labels, image, target)
        if not self.target_is_index:
            y = y.astype(np.float32, copy=False)
        lead = () if self.target_is_index else (slice(None),)
        for held in self._held.get((i, plane), ()):
            inter = tuple(slice(max(h.start, b.start) - b.start, max(0, min(h.stop, b.stop) - b.start))
                          for h, b in zip(held, box))
            y[(*lead, *inter)] = self.targets.fill
        x = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)
        x = self._fit(x, box, ref, small, pad=self._pad_mode[i])
        y = self._fit(y, box, ref, small, fill=self.targets.fill, lead=len(lead))
        return np.ascontiguousarray(x), np.ascontiguousarray(y)

    def _fit(self, arr: np.ndarray, box: tuple[slice, ...], ref: PatchRef, small: list[bool], *,
             pad: str | None = None, fill=None, lead: int = 1) -> np.ndarray:
        """Crop ``arr`` (covering ``box``) to the patch; dims smaller than the patch are padded first."""
        if any(small):
            widths = [(0, 0)] * lead + [(0, max(0, p - (b.stop - b.start))) if sm else (0, 0)
                                        for p, b, sm in zip(self.patch, box, small)]
            arr = np.pad(arr, widths, mode=pad) if pad else np.pad(arr, widths, constant_values=fill)
        crop = tuple(slice(a - b.start, a - b.start + z) for a, z, b in zip(ref.start, ref.size, box))
        return arr[(slice(None),) * lead + crop]

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """One batch ``(x, y)`` on ``device``: ``x`` ``(B, C, *patch)`` float32; ``y`` as the targets say."""
        refs = [self.draw() for _ in range(batch_size)]
        if self.workers > 1 and batch_size > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="bioimg-patches")
            read = list(self._pool.map(self.read, refs))
        else:
            read = [self.read(ref) for ref in refs]
        xs, ys = [], []
        for ref, (xa, ya) in zip(refs, read):
            x, y = torch.from_numpy(xa), torch.from_numpy(ya)
            if ref.size != self.patch:
                x, y = resize_pair(x, y, self.patch, self.target_is_index)
            xs.append(x)
            ys.append(y)
        x = torch.stack(xs).to(device, non_blocking=True)
        y = torch.stack(ys).to(device, non_blocking=True)
        if self.augment:
            x, y = augment_pair(x, y, self.rng, self.target_is_index, self.intensity)
        return x, y

    def rng_state(self) -> dict:
        """A copy of the random stream's state (drawing, zoom, augmentation)."""
        import copy

        return copy.deepcopy(self.rng.bit_generator.state)

    def close(self) -> None:
        """Stop the reader threads (a later batch starts them again)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class Prefetch:
    """Prepare the next batch in a background thread while the caller trains on the current one.

    Stands in for a sampler (``sample(batch_size, device)``): the batches and their
    order are those the sampler gives when called directly. The sampler's random
    stream runs one batch ahead; :meth:`rng_state` is its state as of the batches
    handed out, so a run resumed from it draws the batch that was prepared but never
    used.
    """

    def __init__(self, sampler: DataSetSampler, batch_size: int, device: torch.device | str = "cpu"):
        self.sampler, self.batch_size, self.device = sampler, int(batch_size), device
        self.patch = sampler.patch
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bioimg-prefetch")
        self._submit()

    def _submit(self) -> None:
        self._state = self.sampler.rng_state()  # no draw is in flight: the stream is where the caller is
        self._next = self._pool.submit(self.sampler.sample, self.batch_size, self.device)

    def sample(self, batch_size: int | None = None, device: torch.device | str | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if (batch_size or self.batch_size) != self.batch_size or (device or self.device) != self.device:
            self._next.result()  # a different request: serve it directly, keep the queued batch for later
            return self.sampler.sample(batch_size or self.batch_size, device or self.device)
        batch = self._next.result()
        self._submit()
        return batch

    def rng_state(self) -> dict:
        """The sampler's random state before the batch prepared ahead (see the class notes)."""
        return self._state

    def close(self) -> None:
        self._next.cancel()
        self._pool.shutdown(wait=True)
        self.sampler.close()
