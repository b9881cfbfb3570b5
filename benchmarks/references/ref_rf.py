"""Reference: an ilastik-style random forest on multiscale filter features, for scribbles (semantic).

Per pixel, at scales sigma = 0.7, 1, 1.6, 3.5, 5, 10 (ilastik's default set of filters): Gaussian
smoothing, Laplacian of Gaussian, Gaussian gradient magnitude, difference of Gaussians, the two
eigenvalues of the structure tensor and of the Hessian; plus the raw intensity. scikit-learn's
RandomForestClassifier (100 trees) is fitted on the annotated pixels (label > 0) and predicts every pixel.

    python -m benchmarks.references.ref_rf --image train.tif --labels strokes.tif --test test.tif --out pred.tif
"""

import argparse
import json
import time

import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.feature import (
    hessian_matrix,
    hessian_matrix_eigvals,
    structure_tensor,
    structure_tensor_eigenvalues,
)

SIGMAS = (0.7, 1.0, 1.6, 3.5, 5.0, 10.0)


def features(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [1, 99.8])
    x = ((img - lo) / (hi - lo + 1e-12)).astype(np.float32)
    f = [x]
    for s in SIGMAS:
        g = ndi.gaussian_filter(x, s)
        f += [g, ndi.gaussian_laplace(x, s), ndi.gaussian_gradient_magnitude(x, s), g - ndi.gaussian_filter(x, 1.66 * s)]
        f += list(structure_tensor_eigenvalues(structure_tensor(x, sigma=s, order="rc")))
        f += list(hessian_matrix_eigvals(hessian_matrix(x, sigma=s, order="rc", use_gaussian_derivatives=False)))
    return np.stack(f, -1).reshape(-1, len(f))


def main():
    from sklearn.ensemble import RandomForestClassifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", required=True)
    ap.add_argument("--labels", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.perf_counter()
    img, lab, test = tifffile.imread(a.image), tifffile.imread(a.labels), tifffile.imread(a.test)
    fx, y = features(img.astype(np.float32)), lab.ravel()
    rf = RandomForestClassifier(100, n_jobs=a.threads, random_state=a.seed).fit(fx[y > 0], y[y > 0])
    fit_s = time.perf_counter() - t0
    pred = rf.predict(features(test.astype(np.float32))).reshape(test.shape).astype(np.uint8)
    tifffile.imwrite(a.out, pred)
    print(json.dumps({"fit_seconds": round(fit_s, 1), "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
