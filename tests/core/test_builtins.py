"""Built-in models from Python: load by name, a clear error for a wrong name, scale and input adaptation."""

import time

import numpy as np
import pytest

from napari_bioimg.core.errors import CheckpointError, InputError
from napari_bioimg.core.formats.builtins import available, builtin_path
from napari_bioimg.core.formats.loading import load_model, read_card
from napari_bioimg.core.inference.predict import predict_sync
from napari_bioimg.core.inference.scale import adapt_input, equivalent_diameter, model_diameter
from napari_bioimg.core.sim import make_scene


def test_the_shipped_built_ins_are_in_the_package():
    """The weights are part of the package (package data), not something a test may do without."""
    assert {"nuclei-2d", "nuclei-3d", "denoise-2d"} <= set(available())


def test_unknown_name_lists_the_builtins():
    with pytest.raises(CheckpointError, match="unknown built-in model 'cells-9d'.*builtin:"):
        load_model("builtin:cells-9d")


def test_load_by_name_is_quick_and_carries_its_card():
    start = time.perf_counter()
    loaded = load_model("builtin:nuclei-2d", "cpu")
    assert time.perf_counter() - start < 5  # ~0.1 s on an idle core (goal: 1 s); loose for a loaded CI machine
    card = read_card("builtin:nuclei-2d")
    assert loaded.task.name == "instance" and card.builtin["real_images"] == 0
    assert card.builtin["generator"]["settings"]["diameter"] == [12.0, 60.0]
    assert builtin_path("nuclei-2d").stat().st_size < 25e6


def test_rgb_into_the_one_channel_model_is_converted_with_a_notice():
    loaded = load_model("builtin:nuclei-2d", "cpu")
    image = np.random.default_rng(0).random((64, 64, 3)).astype(np.float32)
    out, axes, rgb, rescaled, notices = adapt_input(loaded, image, "YXC", diameter=None, rgb=True)
    assert out.shape == (64, 64) and axes == "YX" and rescaled is None
    assert any("converted to grey" in n.message for n in notices)


def test_diameter_rescales_and_the_result_comes_back_at_the_image_size():
    loaded = load_model("builtin:nuclei-2d", "cpu")
    scene = make_scene((96, 96), 3)
    typical, _ = model_diameter(loaded)  # sqrt(12 * 60) px: the middle of the sizes it was trained on
    out, axes, _, rescaled, notices = adapt_input(loaded, scene.image, "YX", diameter=typical / 2)
    assert out.shape == (192, 192) and rescaled is not None  # objects half the model's size: zoomed 2x
    back = rescaled.back(np.ones((192, 192), np.uint16))
    assert back.shape == (96, 96)
    far = adapt_input(loaded, scene.image, "YX", diameter=300.0)[4]
    assert any("far outside" in n.message and "12-60 px" in n.message for n in far)
    with pytest.raises(InputError) as err:
        adapt_input(loaded, scene.image, "YX", diameter=-3)
    assert err.value.field == "diameter"


def test_a_stack_goes_slice_by_slice_with_the_notice():
    loaded = load_model("builtin:nuclei-2d", "cpu")
    events = []
    stack = np.stack([make_scene((64, 64), 1).image] * 2)
    out = predict_sync(loaded, stack, "ZYX", callback=events.append)
    assert out.shape == stack.shape
    assert any("slice by slice" in getattr(e, "message", "") for e in events)


def test_equivalent_diameter_of_discs():
    yy, xx = np.mgrid[:100, :100]
    labels = ((yy - 30) ** 2 + (xx - 30) ** 2 < 100).astype(np.uint8)
    assert equivalent_diameter(labels) == pytest.approx(20, rel=0.05)
