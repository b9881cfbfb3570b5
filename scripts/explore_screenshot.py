"""Screenshot of the "Explore objects" widget for docs/explore.md (run under a virtual display).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/explore_screenshot.py docs/explore.png

Opens the nuclei sample in a real napari window, opens the widget from the plugin menu's
path, computes the embedding, marks the two most isolated points and the rest as three
classes (by lasso / selection), and clicks the second most isolated point, so that the
picture shows the link: the ringed point on the plot and its nucleus selected in the layer.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np


def wait(app, done, timeout=300.0):
    end = time.time() + timeout
    while not done():
        app.processEvents()
        time.sleep(0.02)
        if time.time() > end:
            raise SystemExit("timed out waiting for the widget")


def main(out: str = "docs/explore.png") -> int:
    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    torch.set_num_threads(1)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1500, 900)
    app = QApplication.instance()
    _dock, w = viewer.window.add_plugin_dock_widget("napari-bioimg", "Explore objects")
    viewer.open_sample("napari-bioimg", "nuclei")
    objects = viewer.layers["nuclei labels"]
    w.seconds.value = 15
    w.compute_btn.native.click()
    wait(app, lambda: not w.busy)
    plot = w.plot
    x, y = plot.coords[:, 0], plot.coords[:, 1]
    # the two most isolated points of the map (farthest from the median): which nuclei are they? Lasso each
    # as its own class and the rest as a third; then click the second, so its nucleus is selected in the layer
    d = np.hypot(x - np.median(x), y - np.median(y))
    first, second = (int(i) for i in np.argsort(d)[::-1][:2])
    pad = 0.03 * max(np.ptp(x), np.ptp(y))

    def around(k):
        return [(x[k] - pad, y[k] - pad), (x[k] + pad, y[k] - pad), (x[k] + pad, y[k] + pad), (x[k] - pad, y[k] + pad)]

    for k, name in ((first, "isolated 1"), (second, "isolated 2")):
        plot.lasso(around(k))
        w.class_name.value = name
        w.mark_btn.native.click()
    plot.select(np.delete(plot.ids, [first, second]))
    w.class_name.value = "the others"
    w.mark_btn.native.click()
    plot.click(x[second], y[second])
    objects.show_selected_label = True
    objects.opacity = 0.6
    viewer.layers["nuclei"].contrast_limits = np.percentile(viewer.layers["nuclei"].data, (1, 99.8))
    for _ in range(30):
        app.processEvents()
        time.sleep(0.05)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(out, canvas_only=False)
    print(f"wrote {out}: selected object {plot.highlighted}, {len(plot.ids)} objects", file=sys.stderr)
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
