"""A small scene for live-annotation tests: four pixel classes with dense truth, and strokes a user paints.

Class 1: dark noisy background; 2: bright round cells; 3: their thin rims (2 px, a hard class next to
class 2); 4: a striped texture (a class that only its pattern tells apart). Strokes are lists of
points where a brush dab of ``BRUSH`` pixels stays inside its class.
"""

import numpy as np

BRUSH = 3


def four_classes(n: int = 128, seed: int = 0):
    """``(image, truth)``: a float32 image and its dense classes 1..4."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    truth = np.ones((n, n), np.uint8)
    image = rng.normal(20, 6, (n, n))
    centres = [(22, 22), (22, 62), (62, 22), (62, 62), (100, 30), (30, 100)]
    for cy, cx in centres:
        r = np.hypot(yy - cy, xx - cx)
        truth[(r >= 10) & (r < 13)] = 3
        truth[r < 10] = 2
    stripes = (yy >= 84) & (xx >= 70)
    truth[stripes] = 4
    image[truth == 2] += 90
    image[truth == 3] += 160
    image[stripes] += 110 * ((xx[stripes] // 2) % 2)
    return image.astype(np.float32), truth


def strokes(truth, label: int, count: int, seed: int = 0, step: int = 3):
    """``count`` short strokes (lists of points) inside class ``label``, each 4 dabs along the class."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed + label)
    inside = ndi.binary_erosion(truth == label, iterations=1) if label != 3 else truth == label
    pts = np.argwhere(inside)
    out = []
    for _ in range(count):
        y, x = pts[rng.integers(len(pts))]
        line = [(int(y), int(x))]
        for _ in range(3):
            near = pts[(np.abs(pts - line[-1]).max(1) <= step) & (np.abs(pts - line[-1]).max(1) >= 1)]
            if not len(near):
                break
            line.append(tuple(int(v) for v in near[rng.integers(len(near))]))
        out.append(line)
    return out


def paint(labels: np.ndarray, label: int, points, brush: int = 1) -> list:
    """Dabs of ``label`` in ``labels`` (a copy's pixels set in place); returns ``(box, values)`` per dab,
    where the dab stays inside the image."""
    edits = []
    for y, x in points:
        box = (slice(max(0, y - brush // 2), y - brush // 2 + brush), slice(max(0, x - brush // 2), x - brush // 2 + brush))
        labels[box] = label
        edits.append((box, labels[box].copy()))
    return edits


def iou(pred, truth, c) -> float:
    union = np.logical_or(pred == c, truth == c).sum()
    return float(np.logical_and(pred == c, truth == c).sum() / union) if union else 1.0
