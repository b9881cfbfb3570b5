"""The widget's form, opened from the Plugins menu, offers what the engine declares, and says when a typed value
is out of range instead of clamping it silently."""

from __future__ import annotations

from qtpy.QtCore import Qt

from napari_bioimg.core.config import suggest
from napari_bioimg.core.settings.declare import declared, default
from napari_bioimg.core.settings.train import TrainConfig


def _numeric_controls(form):
    return {name: w for name, w in vars(form).items() if hasattr(w, "declared_as") and hasattr(w.native, "minimum")}


def test_every_number_control_offers_exactly_the_declared_range(widget):
    """The smallest and largest value each spin box offers are accepted by the engine's own check, and one step
    beyond them is refused: the form and the engine agree on every bound."""
    controls = _numeric_controls(widget.form)
    assert {"time_limit", "epochs", "patch", "patch_z", "batch", "lr", "depth", "base_channels", "val",
            "temporal"} <= set(controls)
    for name, w in controls.items():
        _assert_agrees(name, w)


def _assert_agrees(name, w):
    shown, box = w.declared_as, w.native
    bound = declared(shown.config)[shown.name].bound
    step = 10.0 ** -box.decimals() if hasattr(box, "decimals") else 1
    for edge, beyond in ((box.minimum(), box.minimum() - step), (box.maximum(), box.maximum() + step)):
        if not (shown.zero_unset and edge == 0):
            assert bound.problem(edge / shown.scale) is None, f"{name}: {edge} offered but refused"
        assert bound.problem(beyond / shown.scale) is not None, f"{name}: {beyond} accepted but not offered"


def test_the_explore_widgets_training_time_is_the_declared_one(viewer):
    from napari_bioimg.core.settings.embed import EmbedConfig

    _dock, explore = viewer.window.add_plugin_dock_widget("napari-bioimg", "Explore objects")
    _assert_agrees("seconds", explore.seconds)
    assert explore.seconds.value == default(EmbedConfig, "time_limit")


def test_the_form_starts_at_the_declared_defaults_and_choices(widget):
    form = widget.form
    s = suggest("instance", spatial_dims=2, device=form.device.choices[1])
    assert form.time_limit.value == default(TrainConfig, "time_limit")
    assert form.val.value / 100 == default(TrainConfig, "val_fraction")
    assert form.seed.value == str(default(TrainConfig, "seed"))
    assert form.augment.value is default(TrainConfig, "augment")
    assert form.epochs.value == 0 and default(TrainConfig, "epochs") is None  # 0 = "use the time limit"
    assert (form.batch.value, form.patch.value) == (s.batch_size, s.patch_size)
    assert abs(form.lr.value - s.learning_rate) < 1e-9
    assert tuple(form.optimizer.choices) == declared(TrainConfig)["optimizer"].choices
    assert form.optimizer.value == default(TrainConfig, "optimizer")
    assert tuple(form.dims.choices) == ("auto", *(f"{d}D" for d in declared(TrainConfig)["spatial_dims"].choices))
    assert form.device.value == default(TrainConfig, "device")


def _type(qtbot, control, text: str) -> None:
    """Select the control's text and type ``text`` then Enter, as a user does."""
    box = control.native
    box.lineEdit().selectAll()
    qtbot.keyClicks(box, text)
    qtbot.keyClick(box, Qt.Key.Key_Return)


def test_a_typed_value_out_of_range_is_said_not_clamped_silently(widget, qtbot):
    """Issue 24: patch 3 and learning rate 10 were clamped without a word."""
    form = widget.form
    _type(qtbot, form.patch, "3")
    qtbot.waitUntil(lambda: "Patch size must be at least 8, got 3" in widget.status.value, timeout=5000)
    assert form.patch.value == 8 and widget.status.value.endswith("it is 8")

    _type(qtbot, form.lr, "10")
    qtbot.waitUntil(lambda: "Learning rate must be at most 1, got 10" in widget.status.value, timeout=5000)
    assert form.lr.value <= 1

    _type(qtbot, form.val, "95")
    qtbot.waitUntil(lambda: "Validation % must be at most 89, got 95" in widget.status.value, timeout=5000)
    assert form.config().val_fraction < 0.9


def test_a_value_in_range_says_nothing(widget, qtbot):
    form = widget.form
    widget.status.value = "Ready"
    _type(qtbot, form.patch, "64")
    _type(qtbot, form.lr, "0.001")
    assert (form.patch.value, round(form.lr.value, 4)) == (64, 0.001)
    assert widget.status.value == "Ready" or "must be" not in widget.status.value
