"""Live training in a real viewer: strokes painted after Train reach the running model (issue 13)."""

import threading
import time

import numpy as np

from .conftest import ours, wait_idle

THREADS_BEFORE = set()


def _stripes(n=96):
    rng = np.random.default_rng(0)
    image = rng.normal(0, 8, (n, n)).astype(np.float32)
    image[:, n // 3: 2 * n // 3] += 100
    image[:, 2 * n // 3:] += 100 * ((np.arange(n) // 3) % 2)[:, None]
    truth = np.ones((n, n), np.uint8)
    truth[:, n // 3: 2 * n // 3] = 2
    truth[:, 2 * n // 3:] = 3
    return image, truth


def _live_settings(widget, seconds=600):
    f = widget.form
    f.time_limit.value = seconds
    f.epochs.value = 0
    f.patch.value = 32
    f.batch.value = 4
    f.depth.value = 2
    f.base_channels.value = 8
    f.val.value = 0


def _stroke(layer, label, y, xs):
    """What a brush stroke does: napari's own painting (one paint event per call)."""
    layer.brush_size = 4
    for x in xs:
        layer.paint((y, x), label)


def test_live_scribbles_learn_strokes_and_a_new_class_then_stop_promptly(viewer, widget, qtbot):
    image, truth = _stripes()
    viewer.add_image(image, name="cells")
    scribbles = viewer.add_labels(np.zeros_like(truth), name="scribbles")
    widget.form.task.value = "semantic"
    _live_settings(widget)
    widget.live.checkbox.value = True
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: "waiting for annotations" in widget.status.value, timeout=60_000)
    _stroke(scribbles, 1, 40, range(4, 26, 2))  # strokes painted after Train
    _stroke(scribbles, 2, 40, range(36, 58, 2))
    qtbot.waitUntil(lambda: widget.session.run.last is not None, timeout=60_000)  # training started by itself
    result = next(layer for layer in ours(viewer) if "uncertainty" not in layer.name)
    qtbot.waitUntil(lambda: set(np.unique(result.data)) >= {1, 2}, timeout=60_000)
    assert 3 not in np.unique(result.data)
    painted = scribbles.data.copy()
    _stroke(scribbles, 3, 60, range(70, 92, 2))  # a new class mid-session
    qtbot.waitUntil(lambda: np.mean(result.data[:, 66:] == 3) > 0.6, timeout=120_000)
    # the view, all three classes, predicted by the network (the first previews come from a pixel classifier)
    qtbot.waitUntil(lambda: widget.live.source == "network" and np.mean(result.data == truth) > 0.8,
                    timeout=120_000)
    uncertainty = viewer.layers["cells [uncertainty]"]
    assert uncertainty.data.shape == truth.shape and float(uncertainty.data.max()) > 0
    # the live view stays readable: uncertainty hidden until asked for, under the result and the strokes
    names = [layer.name for layer in viewer.layers]
    assert not uncertainty.visible and names.index("cells [uncertainty]") < names.index("scribbles") \
        < names.index(result.name)
    widget.live.uncertainty_box.value = True
    assert uncertainty.visible
    assert "confidence" in result.features.columns
    np.testing.assert_array_equal(scribbles.data[:, :60], painted[:, :60])  # the user's layer is only read
    assert result.editable is False and viewer.layers.selection.active.name == "scribbles"
    widget.live.next_btn.native.click()  # Where next?
    assert widget.live.where.regions and not widget.live.suggestions.native.isHidden()
    (_, region), box = widget.live.where.regions[0], viewer.layers["where next"]
    corners = box.data[0]
    assert [(b.start - 0.5, b.stop - 0.5) for b in region.box] == [(c.min(), c.max()) for c in corners.T]
    assert viewer.layers.selection.active.name == "scribbles"  # the box did not take the brush away
    t = time.perf_counter()
    widget.stop_btn.native.click()
    qtbot.waitUntil(lambda: "train" not in widget.session.workers, timeout=10_000)
    assert time.perf_counter() - t < 1.5
    wait_idle(qtbot, widget)
    assert np.mean(result.data == truth) > 0.75  # the whole image predicted with the final model
    assert not len(box.data) and widget.live.suggestions.native.isHidden()  # no box left over
    assert not widget.live.suggestions.choices  # the list is cleared after Stop


def test_closing_the_viewer_during_live_training_leaves_no_thread(make_napari_viewer, qtbot):
    from .conftest import open_widget

    viewer = make_napari_viewer()
    widget = open_widget(viewer)
    image, truth = _stripes(64)
    viewer.add_image(image, name="cells")
    scribbles = viewer.add_labels(np.where(np.arange(64)[None, :] < 20, 1, 2).astype(np.uint8) *
                                  (np.arange(64)[:, None] % 16 == 0), name="scribbles")
    widget.form.task.value = "semantic"
    _live_settings(widget)
    widget.live.checkbox.value = True
    before = {t.ident for t in threading.enumerate()}
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: widget.session.run.last is not None, timeout=60_000)
    _stroke(scribbles, 2, 33, range(30, 40, 2))
    viewer.close()
    qtbot.waitUntil(lambda: not widget.session.workers, timeout=2_000)
    qtbot.waitUntil(lambda: {t.ident for t in threading.enumerate() if t.is_alive()} <= before | _pool_threads(),
                    timeout=2_000)


def _pool_threads():
    from qtpy.QtCore import QThreadPool

    QThreadPool.globalInstance().waitForDone(2000)
    return {t.ident for t in threading.enumerate()}


def _strokes_from(truth, n=3):
    """Strokes a user would paint: through the middle of the ``n`` largest nuclei (2) and on background
    far from any nucleus (1), as ``(label, y, xs)``."""
    from scipy import ndimage as ndi

    ids, areas = np.unique(truth[truth > 0], return_counts=True)
    strokes = []
    for i in ids[np.argsort(areas)[::-1][:n]]:
        y, x = np.argwhere(truth == i).mean(0).astype(int)
        strokes.append((2, int(y), range(x - 8, x + 9, 2)))
    far = ndi.distance_transform_edt(truth == 0) > 8
    for y in (40, 128, 216):
        xs = np.flatnonzero(far[y])
        x0 = int(xs[len(xs) // 2])
        strokes.append((1, y, [x for x in range(x0 - 8, x0 + 9, 2) if 0 <= x < truth.shape[1] and far[y, x]]))
    return strokes


def test_live_scribbles_on_the_bundled_sample(viewer, widget, qtbot):
    """File > Open Sample > Nuclei 2D (to paint scribbles): the scribbles layer is picked, Live waits, learns
    the nuclei from a few strokes (scored against the sample's masks on the pixels not painted)."""
    from napari_bioimg._sample_data import SLICE_2D, load_nuclei_3d

    viewer.open_sample("napari-bioimg", "nuclei_scribbles")
    widget.form.task.value = "semantic"
    assert widget.form.annotations.value.name == "scribbles"
    _live_settings(widget)
    widget.live.checkbox.value = True
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: "waiting for annotations" in widget.status.value, timeout=60_000)
    scribbles = viewer.layers["scribbles"]
    truth = load_nuclei_3d()[1][SLICE_2D] > 0
    for label, y, xs in _strokes_from(load_nuclei_3d()[1][SLICE_2D]):
        _stroke(scribbles, label, y, xs)
    unpainted = scribbles.data == 0

    def iou(result):
        found, nucleus = (result.data == 2)[unpainted], truth[unpainted]
        return np.sum(found & nucleus) / max(1, np.sum(found | nucleus))

    qtbot.waitUntil(lambda: widget.session.run.last is not None, timeout=60_000)
    (result,) = [layer for layer in ours(viewer) if "uncertainty" not in layer.name]
    # nucleus IoU 0.82-0.92 after 50 steps (engine, seeds 0-2); calling every pixel nucleus scores 0.45
    # the network's own preview (not the first pixel classifier's) has learnt the nuclei
    qtbot.waitUntil(lambda: widget.live.source == "network" and iou(result) > 0.65, timeout=120_000)
    widget.stop_btn.native.click()
    wait_idle(qtbot, widget)
    (result,) = [layer for layer in ours(viewer) if "uncertainty" not in layer.name]
    assert set(np.unique(result.data)) <= {1, 2} and result.data.shape == (256, 256)
    assert iou(result) > 0.55, iou(result)  # the final model, after more steps: 0.68-0.83 at 150 steps


def test_live_instance_corrections_reach_the_worker(viewer, widget, qtbot):
    """Nuclei 2D sample, Live: erasing an object mid-training is an edit the next previews have trained on."""
    from napari_bioimg.core import events as E

    viewer.open_sample("napari-bioimg", "nuclei")
    _live_settings(widget)
    widget.live.checkbox.value = True
    previews = []
    widget.session.event.connect(lambda run, ev: isinstance(ev, E.LivePreview) and previews.append(ev))
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: len(previews) >= 1, timeout=90_000)
    labels = viewer.layers["nuclei labels"]
    before = labels.data.copy()
    target = int(np.bincount(before.ravel())[1:].argmax()) + 1
    ys, xs = np.nonzero(before == target)
    labels.selected_label = 0
    labels.fill((int(ys[len(ys) // 2]), int(xs[len(xs) // 2])), 0)  # the eraser's fill: the object is gone
    qtbot.waitUntil(lambda: previews[-1].edits >= 1, timeout=60_000)
    widget.stop_btn.native.click()
    wait_idle(qtbot, widget)
    assert widget.session.model.card.task == "instance"
    assert any(layer.name == "nuclei [unet]" for layer in ours(viewer))


def test_live_classification_takes_new_points_and_classes(viewer, widget, qtbot):
    from napari_bioimg.core import events as E

    viewer.open_sample("napari-bioimg", "nuclei")
    labels = viewer.layers["nuclei labels"].data
    ids = [i for i in np.unique(labels) if i]
    sizes = {i: int((labels == i).sum()) for i in ids}
    order = sorted(ids, key=sizes.get)
    centre = {i: np.argwhere(labels == i).mean(0) for i in ids}
    small, big = order[: len(order) // 2], order[len(order) // 2:]
    points = viewer.add_points(np.array([centre[i] for i in small[:3] + big[-3:]]), name="marks",
                               features={"class": ["small"] * 3 + ["big"] * 3})
    widget.form.task.value = "classify"
    widget.form.time_limit.value = 600
    widget.form.epochs.value = 0
    widget.live.checkbox.value = True
    notices = []
    widget.session.event.connect(lambda run, ev: isinstance(ev, E.Notice) and notices.append(ev.message))
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: widget.session.run.last is not None and widget.session.run.last.step > 3,
                    timeout=90_000)
    mid = order[len(order) // 2]
    points.add(centre[mid])  # a point on a middle-sized nucleus, with a new class
    points.features.loc[len(points.data) - 1, "class"] = "medium"
    points.events.features()
    qtbot.waitUntil(lambda: any("new class medium" in m for m in notices), timeout=60_000)
    widget.stop_btn.native.click()
    wait_idle(qtbot, widget)
    assert widget.session.model.card.class_names == ("big", "medium", "small")


def test_live_session_learns_classes_painted_mid_session_past_its_time_limit(viewer, widget, qtbot):
    """Issue 21's user: two classes, Live, two new classes (a thin rim and a texture) once the first are
    learnt, painting on past the time limit, Stop: all four classes in the result, scored against dense truth."""
    from tests.live_scene import four_classes, iou, strokes

    image, truth = four_classes(128)
    viewer.add_image(image, name="cells")
    scribbles = viewer.add_labels(np.zeros_like(truth), name="scribbles")
    f = widget.form
    f.task.value = "semantic"
    f.time_limit.value, f.epochs.value, f.val.value = 3, 0, 0
    f.patch.value, f.batch.value, f.depth.value, f.base_channels.value = 64, 4, 2, 16
    widget.live.checkbox.value = True
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: "waiting for annotations" in widget.status.value, timeout=60_000)

    def paint(label, count, brush=3, seed=0):
        scribbles.brush_size = brush
        for line in strokes(truth, label, count, seed=seed):
            for point in line:
                scribbles.paint(point, label)

    paint(1, 3)
    paint(2, 3)
    qtbot.waitUntil(lambda: any("uncertainty" not in layer.name for layer in ours(viewer)), timeout=60_000)
    result = next(layer for layer in ours(viewer) if "uncertainty" not in layer.name)
    run = widget.session.run
    qtbot.waitUntil(lambda: run.last is not None and run.last.step >= 40 and iou(result.data, truth, 2) > 0.5,
                    timeout=120_000)  # the first two classes are learnt
    paint(3, 4, brush=1, seed=1)  # one-pixel strokes along the rims
    paint(4, 3, seed=1)
    new_at = run.last.step
    qtbot.waitUntil(lambda: run.last.elapsed > 3, timeout=60_000)  # past the time limit: still training
    paint(3, 1, brush=1, seed=2)
    qtbot.waitUntil(lambda: run.last.step >= new_at + 160 and widget.session.busy, timeout=180_000)
    assert "until Stop" in widget.status.value
    widget.stop_btn.native.click()
    wait_idle(qtbot, widget)
    scores = {c: iou(result.data, truth, c) for c in (1, 2, 3, 4)}
    assert min(scores.values()) >= 0.5, scores
