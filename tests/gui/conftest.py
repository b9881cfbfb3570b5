"""GUI tier: a real napari viewer with the widget opened the way a user opens it.

The widget comes from napari's plugin machinery (what *Plugins ▸ napari-bioimg ▸ Deep learning*
calls), so it gets the same proxied viewer a user's widget gets; samples come from
``viewer.open_sample``. Tests click the real buttons and wait for the real workers.
"""

import numpy as np
import pytest

PLUGIN = "napari-bioimg"
WIDGET = "Deep learning (train / predict)"


def open_widget(viewer):
    """Open the dock widget as the Plugins menu does; return the widget instance napari made."""
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    return widget


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def widget(viewer, qtbot):
    """The dock widget beside ``viewer``, opened through the plugin path; its workers are stopped at the end."""
    w = open_widget(viewer)
    yield w
    w.stop()
    qtbot.waitUntil(lambda: not w.busy, timeout=60_000)


def fast_settings(w, seconds=6, epochs=0):
    """Small, quick settings; ``epochs`` (50 steps each) makes the amount of work independent of CPU load."""
    w.form.time_limit.value = seconds
    w.form.epochs.value = epochs
    w.form.patch.value = 64
    w.form.batch.value = 4
    w.form.depth.value = 2
    w.form.base_channels.value = 16
    w.form.lr.value = 5e-3


def wait_idle(qtbot, w, timeout=120_000):
    qtbot.waitUntil(lambda: not w.busy, timeout=timeout)


def snapshot(viewer):
    return {layer.name: np.array(layer.data, copy=True) for layer in viewer.layers}


def ours(viewer):
    """Our result layers."""
    from napari_bioimg._qt.layers import is_ours

    return [layer for layer in viewer.layers if is_ours(layer)]


def same(a, b) -> bool:
    """Whether two references (proxied or not) are the same layer (napari's ``unique_id``, not ``is``)."""
    return a is not None and b is not None and a.unique_id == b.unique_id


def choose_file(monkeypatch, method: str, path, selected_filter: str = ""):
    """Answer the next Qt file dialog (``getSaveFileName`` / ``getOpenFileName``) with ``path``."""
    from qtpy.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, method, staticmethod(lambda *a, **k: (str(path), selected_filter)))


def settle():
    """Deliver every event already posted to the GUI thread (signals queued by workers, deferred calls).

    Not a wait on the clock: once it returns, whatever had been queued has arrived, so a test can then
    assert that nothing (more) happened.
    """
    from qtpy.QtCore import QCoreApplication

    QCoreApplication.sendPostedEvents()
    QCoreApplication.processEvents()
