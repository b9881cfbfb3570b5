"""Small synthetic scenes the command-line tests write to files."""

import numpy as np


def blobs(shape, seed):
    """A uint16 image of four round objects on a noisy background, and their instance labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.uint16)
    for k, (cy, cx) in enumerate([(15, 15), (15, 45), (45, 25), (40, 50)], 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 49] = k
    image = ((labels > 0) * 200 + rng.normal(60, 15, shape)).clip(0, 65535).astype(np.uint16)
    return image, labels
