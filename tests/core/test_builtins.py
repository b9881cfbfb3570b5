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


def test_the_builtin_denoiser_leaves_no_grid_and_denoises_real_nuclei():
    """builtin:denoise-2d on slices of the bundled real nuclei with added noise, no training: no checkerboard in
    the result (the spectrum at periods 2 and 4 px as flat as the clean image's: a transposed-convolution build
    left it 4x higher) and a clear gain over the noisy input."""
    from scipy.ndimage import median_filter

    from napari_bioimg._sample_data import add_poisson_gaussian, load_nuclei_3d
    from napari_bioimg.core.metrics import psnr

    def grid(img):
        f = np.abs(np.fft.fft2(img - img.mean()))
        ratio = f / (median_filter(f, 9, mode="wrap") + 1e-9)
        h, w = f.shape
        return float(max(ratio[p] for p in [(0, w // 2), (h // 2, 0), (h // 2, w // 2), (0, w // 4), (h // 4, 0)]))

    model = load_model("builtin:denoise-2d")
    assert model.card.model_config["upsample"] == "resize"
    stack, _ = load_nuclei_3d()
    clean = stack[20].astype(np.float32)
    noisy = add_poisson_gaussian(clean, seed=1)
    out = np.asarray(predict_sync(model, noisy), np.float32)
    span = float(clean.max() - clean.min())
    # measured: grid 2.3 (the clean slice's own 2.3; the earlier build 9.9), gain 9.6 dB over 6 slices and noises
    assert grid(out) < 4.0, grid(out)
    assert psnr(out, clean, data_range=span) - psnr(noisy, clean, data_range=span) > 7.0
