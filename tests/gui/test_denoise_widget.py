"""GUI tier for image-to-image tasks: denoise a noisy time-lapse, restore with a target layer."""

import numpy as np
from napari.layers import Image

from .conftest import fast_settings, ours, same, snapshot, wait_idle


def shown(w) -> bool:
    """Whether a field is meant to be visible (the viewer window itself is not shown in tests)."""
    return not w.native.isHidden()


def test_denoise_journey(viewer, widget, qtbot):
    """Noisy time-lapse -> task denoise (no target) -> Train -> live preview -> all frames -> PSNR shown."""
    viewer.open_sample("napari-bioimg", "noisy_timelapse")
    noisy, clean = viewer.layers["noisy time-lapse"], viewer.layers["time-lapse (clean reference)"]
    assert same(widget.image.value, noisy)
    assert widget.axes.value == "TYX"  # from the layer's axis labels
    widget.task.value = "denoise"
    assert not shown(widget.annotations) and not shown(widget.target) and shown(widget.reference)
    assert widget.patch.value == 64 and widget.depth.value == 2
    widget.reference.value = clean
    before = snapshot(viewer)
    fast_settings(widget, epochs=3)
    widget.preview.value = True
    viewer.dims.set_current_step(0, 5)
    widget.train_btn.native.click()
    assert widget.busy and not widget.train_btn.enabled
    qtbot.waitUntil(lambda: len(ours(viewer)) == 1, timeout=60_000)
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    assert isinstance(result, Image) and result.name == "noisy time-lapse [denoised]"
    assert result.data.shape == noisy.data.shape and result.data.dtype == np.float32
    np.testing.assert_array_equal(result.scale, noisy.scale)
    assert tuple(result.contrast_limits) == tuple(noisy.contrast_limits)
    scores = widget._run["scores"]
    assert scores["psnr"] > scores["input_psnr"] + 3, scores
    assert "PSNR" in widget.status.value and "time-lapse (clean reference)" in widget.status.value
    assert widget.plot.val_scores  # validation curve (PSNR against the reference)
    for name, data in before.items():
        np.testing.assert_array_equal(viewer.layers[name].data, data)


def test_restore_needs_a_matching_target(viewer, widget, qtbot):
    rng = np.random.default_rng(0)
    clean = np.zeros((64, 64), np.float32)
    clean[16:48, 16:48] = 100
    viewer.add_image(clean + rng.normal(0, 20, clean.shape).astype(np.float32), name="noisy")
    viewer.add_image(clean[:, :60], name="wrong size")
    widget.image.value = viewer.layers["noisy"]
    widget.task.value = "restore"
    assert shown(widget.target) and not shown(widget.annotations)
    fast_settings(widget, epochs=1)
    widget.target.value = None
    widget.train_btn.native.click()
    assert not widget.busy  # refused at once: no target picked
    widget.target.value = viewer.layers["wrong size"]
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    assert widget.status.value.startswith("Error:") and "target image has shape (64, 60)" in widget.status.value
    assert not ours(viewer)
    viewer.add_image(clean, name="clean")
    widget.target.value = viewer.layers["clean"]
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    assert result.name == "noisy [restored]" and result.data.shape == (64, 64)
