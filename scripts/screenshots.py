"""Screenshots of the dock widget in the real napari window, for docs/.

Run under a virtual display (no screen needed)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py [--out docs] [--seconds 40]

Makes ``widget_advanced.png`` (Advanced open, after training on the Nuclei 2D sample) and
``classify_legend.png`` (objects classified big / small, with the colour legend). Every step
goes through the Plugins menu's path and the widget's own buttons, as a user would.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

PLUGIN, WIDGET = "napari-bioimg", "Deep learning (train / predict)"


def wait(app, done, timeout: float = 600) -> None:
    start = time.perf_counter()
    while not done():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the widget did not finish in time")
        app.processEvents()
        time.sleep(0.02)
    for _ in range(30):  # let the last repaints land
        app.processEvents()
        time.sleep(0.01)


def window(napari, size=(1500, 1000)):
    viewer = napari.Viewer()
    viewer.window._qt_window.resize(*size)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return viewer, widget


def advanced(napari, app, out: Path, seconds: int) -> None:
    viewer, w = window(napari)
    viewer.open_sample(PLUGIN, "nuclei")
    w.form.time_limit.value = seconds
    w.form.collapsible.expand(animate=False)
    w.train_btn.native.click()
    wait(app, lambda: not w.session.busy)
    viewer.layers["nuclei labels"].visible = False
    viewer.layers.selection.active = viewer.layers["nuclei labels"]
    w.scroll.verticalScrollBar().setValue(w.scroll.verticalScrollBar().maximum())  # the plot and the status
    wait(app, lambda: True)
    viewer.screenshot(str(out / "widget_advanced.png"), canvas_only=False)
    viewer.close()


def mark_nuclei(viewer, per_class: int = 6):
    """Points with a 'class' on a few nuclei: big or small (what a user would click)."""
    labels = viewer.layers["nuclei labels"].data
    ids, areas = np.unique(labels[labels > 0], return_counts=True)
    median = np.median(areas)
    centres, classes = [], []
    for name, chosen in (("big", ids[areas > median][:per_class]), ("small", ids[areas <= median][:per_class])):
        for i in chosen:
            yx = np.argwhere(labels == i)
            centres.append(yx[np.argmin(((yx - yx.mean(0)) ** 2).sum(1))])
            classes.append(name)
    return viewer.add_points(np.array(centres), name="marks", features={"class": classes}, size=8,
                             face_color="white")


def classify(napari, app, out: Path) -> None:
    viewer, w = window(napari)
    viewer.open_sample(PLUGIN, "nuclei")
    w.form.task.value = "classify"
    mark_nuclei(viewer)
    w.form.epochs.value = 2
    w.train_btn.native.click()
    wait(app, lambda: not w.session.busy)
    viewer.layers["nuclei labels"].visible = False
    viewer.layers["marks"].visible = False
    w.scroll.verticalScrollBar().setValue(w.scroll.verticalScrollBar().maximum())
    wait(app, lambda: True)
    viewer.screenshot(str(out / "classify_legend.png"), canvas_only=False)
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    parser.add_argument("--seconds", type=int, default=40, help="training time for widget_advanced.png")
    args = parser.parse_args()
    import napari
    from qtpy.QtWidgets import QApplication

    args.out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or napari.qt.get_qapp()
    advanced(napari, app, args.out, args.seconds)
    classify(napari, app, args.out)
    print(f"wrote {args.out / 'widget_advanced.png'} and {args.out / 'classify_legend.png'}")


if __name__ == "__main__":
    main()
