"""Screenshots of the dock widget in the real napari window, for docs/.

Run under a virtual display (no screen needed)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py [--out docs] [--seconds 40]

Makes ``widget_advanced.png`` (Advanced open, after training on the Nuclei 2D sample),
``classify_legend.png`` (objects classified big / small, with the colour legend) and ``live.png``
(a live session: scribbles painted with napari's brush while the model trains, its preview and
its ``[uncertainty]`` layer). Every step goes through the Plugins menu's path and the widget's own
buttons, as a user would. ``--only live`` makes one of them.
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


def live(napari, app, out: Path, seconds: float = 60) -> None:
    """Live on, Train, then a user's strokes (napari's brush) on nuclei (2) and background (1)."""
    from scipy import ndimage as ndi

    from napari_bioimg._sample_data import nuclei_2d

    viewer, w = window(napari)
    viewer.open_sample(PLUGIN, "nuclei_scribbles")
    (_, _, _), (truth, _, _) = nuclei_2d()
    scribbles = viewer.layers["scribbles"]
    w.form.task.value = "semantic"
    w.form.annotations.value = scribbles
    w.live.checkbox.value = True
    w.train_btn.native.click()
    wait(app, lambda: "waiting" in w.status.value, 120)
    rng = np.random.default_rng(1)
    scribbles.brush_size = 4
    for label, mask in ((2, ndi.binary_erosion(truth > 0, iterations=3)),
                        (1, ndi.binary_erosion(truth == 0, iterations=6))):
        for y, x in np.argwhere(mask)[rng.choice(int(mask.sum()), 6, replace=False)]:
            for dx in range(-4, 5, 2):  # a short stroke
                if 0 <= x + dx < truth.shape[1] and mask[y, x + dx]:
                    scribbles.paint((int(y), int(x + dx)), label)
    start = time.perf_counter()
    wait(app, lambda: time.perf_counter() - start > seconds, seconds + 60)
    w.live.next_btn.native.click()  # Where next?: the camera goes to the most uncertain region not annotated
    result = next(layer for layer in viewer.layers if layer.name == "nuclei [unet]")
    result.opacity = 0.35  # the image shows through the preview; the uncertainty glows over both
    wait(app, lambda: time.perf_counter() - start > seconds + 3, 60)
    viewer.layers.selection.active = scribbles
    viewer.screenshot(str(out / "live.png"), canvas_only=False)
    w.stop_btn.native.click()
    wait(app, lambda: not w.session.busy)
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    parser.add_argument("--seconds", type=int, default=40, help="training time for widget_advanced.png")
    parser.add_argument("--only", choices=("advanced", "classify", "live"), nargs="+",
                        default=("advanced", "classify", "live"))
    args = parser.parse_args()
    import napari
    from qtpy.QtWidgets import QApplication

    args.out.mkdir(parents=True, exist_ok=True)
    app = QApplication.instance() or napari.qt.get_qapp()
    if "advanced" in args.only:
        advanced(napari, app, args.out, args.seconds)
    if "classify" in args.only:
        classify(napari, app, args.out)
    if "live" in args.only:
        live(napari, app, args.out)
    print(f"wrote {', '.join(args.only)} screenshots to {args.out}")


if __name__ == "__main__":
    main()
