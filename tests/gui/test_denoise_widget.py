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
    assert same(widget.form.image.value, noisy)
    assert widget.form.axes.value == "TYX"  # from the layer's axis labels
    widget.form.task.value = "denoise"
    assert not shown(widget.form.annotations) and not shown(widget.form.target) and shown(widget.form.reference)
    assert widget.form.patch.value == 64 and widget.form.depth.value == 2
    assert same(widget.form.reference.value, clean)  # picked: its name says it is the clean reference
    before = snapshot(viewer)
    fast_settings(widget, epochs=3)
    widget.form.preview.value = True
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
    scores = widget.session.run.scores
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
    widget.form.image.value = viewer.layers["noisy"]
    widget.form.task.value = "restore"
    assert shown(widget.form.target) and not shown(widget.form.annotations)
    fast_settings(widget, epochs=1)
    assert not any(same(c, viewer.layers["wrong size"]) for c in widget.form.target.choices)  # not offered
    assert widget.form.target.value is None
    widget.train_btn.native.click()
    assert not widget.busy and "pick a Target" in widget.status.value  # refused at once, before any layer
    assert not ours(viewer)
    viewer.add_image(clean, name="clean")
    widget.form.target.value = viewer.layers["clean"]
    widget.train_btn.native.click()
    wait_idle(qtbot, widget)
    (result,) = ours(viewer)
    assert result.name == "noisy [restored]" and result.data.shape == (64, 64)
