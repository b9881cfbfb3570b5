"""Issue 16.2: the 3D journey in the real window, with the defaults a user gets on a CPU.

Experiment of 2026-12-01 (issue 16.2). Answered: whether the 3D journey with the CPU defaults (patch 16x64x64,
batch 4: ``PATCH_3D_CPU``, ``BATCH_3D_CPU`` in ``core/settings/defaults.py``) gives a usable model within the
default 120 s; its runs were not committed as a results file.

File ▸ Open Sample ▸ Nuclei 3D, the widget from the Plugins menu, Time limit 120 s (the default),
**Train**; waits for training and the whole-stack prediction that follows, then prints one JSON
row: steps made, seconds until the result, objects found, and F1@0.5 / mean AP of the result
against the sample's labels (scored over the whole stack, most of which was trained on: this
says whether the model is usable, the quality suite's ``nuclei3d-*`` rows score unseen data)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m benchmarks.experiments.journey_3d [--seconds 120] [--dims 2D]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--dims", choices=("auto", "2D", "3D"), default="auto",
                    help="the widget's Model dims (2D: slice by slice, objects linked across slices)")
    a = ap.parse_args()
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_bioimg.core.metrics import matching

    viewer = napari.Viewer()
    app = QApplication.instance()
    _dock, w = viewer.window.add_plugin_dock_widget("napari-bioimg", "Deep learning (train / predict)")
    viewer.open_sample("napari-bioimg", "nuclei_3d")
    w.form.time_limit.value = a.seconds
    w.form.dims.value = a.dims
    truth = np.asarray(viewer.layers["nuclei 3D labels"].data)
    start = time.perf_counter()
    w.train_btn.native.click()
    while w.session.busy or (time.perf_counter() - start < 5):
        app.processEvents()
        time.sleep(0.02)
        if time.perf_counter() - start > a.seconds + 600:
            raise TimeoutError("no result in time")
    seconds = time.perf_counter() - start
    result = next(layer for layer in viewer.layers if layer.metadata.get("napari_bioimg")
                  and "uncertainty" not in layer.name)
    pred = np.asarray(result.data)
    m = matching(truth, pred)["thresholds"]
    cfg = w.session.model.card
    row = {"name": f"3D journey (Nuclei 3D sample, widget defaults, Model dims {a.dims}, CPU)", "seconds_to_result": round(seconds, 1),
           "status": w.status.value, "objects": int(len(np.unique(pred)) - 1), "true_objects": int(truth.max()),
           "f1@0.5": round(m["0.5"]["f1"], 3), "mean_ap": round(float(np.mean([v["ap"] for v in m.values()])), 3),
           "image": list(truth.shape),
           "model": cfg.summary()}
    print(json.dumps(row))
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
