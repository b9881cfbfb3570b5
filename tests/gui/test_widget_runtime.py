"""The widget shares its process with napari: training from it leaves torch's thread count alone."""

import torch

from .conftest import fast_settings, wait_idle


def test_training_from_the_widget_leaves_torch_threads_alone(viewer, widget, qtbot, monkeypatch):
    """No ``torch.set_num_threads`` from the worker (it would rebuild the pool the viewer's thread uses) and the
    thread count the same afterwards. (The random streams are not compared: loading the model to predict builds
    a network, which draws its initial weights before the trained ones replace them.)"""
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    threads = torch.get_num_threads()
    viewer.open_sample("napari-bioimg", "nuclei")
    fast_settings(widget, seconds=600)
    widget.train_btn.native.click()
    qtbot.waitUntil(lambda: len(widget.plot.losses) >= 2, timeout=60_000)
    widget.stop_btn.native.click()
    wait_idle(qtbot, widget)
    assert widget.session.model.checkpoint is not None  # it did train
    assert calls == []
    assert torch.get_num_threads() == threads
