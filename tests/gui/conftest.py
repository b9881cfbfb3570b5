import numpy as np
import pytest


@pytest.fixture
def widget(make_napari_viewer, qtbot):
    """A real viewer with the dock widget added, and a helper to wait for its workers."""
    from napari_bioimg._widget import BioimgWidget

    viewer = make_napari_viewer()
    w = BioimgWidget(viewer)
    viewer.window.add_dock_widget(w, name="napari-bioimg")
    yield w
    w.stop()
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)


def fast_settings(w, seconds=6, epochs=0):
    """Small, quick settings; ``epochs`` (50 steps each) makes the amount of work independent of CPU load."""
    w.time_limit.value = seconds
    w.epochs.value = epochs
    w.patch.value = 64
    w.batch.value = 4
    w.depth.value = 2
    w.base_channels.value = 16
    w.lr.value = 5e-3


def wait_idle(qtbot, w, timeout=120_000):
    qtbot.waitUntil(lambda: not w.busy, timeout=timeout)


def snapshot(viewer):
    return {layer.name: np.array(layer.data, copy=True) for layer in viewer.layers}
