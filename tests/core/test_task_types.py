"""What each task is and what it can do, stated once: front ends and the engine ask these (never a task's name).

A task is a :class:`DenseTask` (per-pixel result, patches and tiles) or an
:class:`ItemTask` (a class per object crop or frame); the capabilities below are
what callers ask of it. The model protocol (sizes a network takes, the tile it
prefers) comes from the model's registry entry.
"""

from __future__ import annotations

import pytest

from napari_bioimg.core.errors import ConfigError
from napari_bioimg.core.formats.bioimageio.foreign import ImportedOutputTask
from napari_bioimg.core.models import get_model, list_models, model_entry, model_protocol
from napari_bioimg.core.tasks import get_task, list_tasks
from napari_bioimg.core.tasks.dense import DenseTask, ImageTask
from napari_bioimg.core.tasks.items import ItemTask

#: name: (kind, live, scribbles, classifies objects, pretrains, exports)
SPEC = {
    "instance": (DenseTask, True, False, False, True, True),
    "semantic": (DenseTask, True, True, False, True, True),
    "classify": (ItemTask, True, False, True, False, False),
    "classify-image": (ItemTask, False, False, False, False, False),
    "denoise": (ImageTask, False, False, False, False, True),
    "restore": (ImageTask, False, False, False, True, True),
    "reconstruct": (ImageTask, False, False, False, False, True),
}


def test_every_registered_task_is_specified():
    assert sorted(list_tasks()) == sorted(SPEC)


@pytest.mark.parametrize("name", sorted(SPEC))
def test_what_each_task_can_do(name):
    kind, live, scribbles, objects, pretrains, exports = SPEC[name]
    task = get_task(name)
    assert isinstance(task, kind) and (kind is not DenseTask or not isinstance(task, ImageTask))
    assert task.supports_live is live
    assert task.wants_scribbles is scribbles
    assert task.classifies_objects is objects
    assert (task.pretrain_refusal() is None) is pretrains
    assert (task.export_refusal() is None) is exports


@pytest.mark.parametrize("name", sorted(SPEC))
def test_a_task_is_dense_or_runs_on_items_and_its_default_model_is_of_that_kind(name):
    task = get_task(name)
    assert isinstance(task, DenseTask) != isinstance(task, ItemTask)
    assert task.predicts_items is isinstance(task, ItemTask)
    assert model_entry(task.default_model).kind == task.model_kind == ("classifier" if task.predicts_items
                                                                         else "dense")
    if isinstance(task, ImageTask):
        assert task.output_kind == "image" and not task.needs_annotations


def test_item_tasks_bring_their_own_validation_preview_and_prediction():
    for name in list_tasks():
        task = get_task(name)
        if task.predicts_items:
            for hook in ("validate_direct", "preview_direct", "predict_direct"):
                assert getattr(type(task), hook) is not getattr(ItemTask, hook), (name, hook)


def test_a_refusal_says_why():
    assert "self-supervised" in get_task("denoise").pretrain_refusal()
    assert "crops" in get_task("classify").pretrain_refusal()
    assert get_task("classify-image").export_refusal().startswith("classify-image models cannot be exported")


def test_an_imported_package_predicts_an_image_and_is_shared_as_the_package():
    task = ImportedOutputTask()
    assert isinstance(task, DenseTask) and not task.predicts_items and task.output_kind == "image"
    assert "share that package" in task.export_refusal()
    assert task.name not in list_tasks()  # predicts only: never offered for training


CONFIGS = [{}, {"depth": 2}, {"depth": 3, "pool_z_levels": 1}, {"depth": 4, "pool_z_levels": 4}]


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_the_registry_entry_says_what_sizes_the_built_network_pads_to(name, spatial_dims):
    for config in CONFIGS:
        if "pool_z_levels" in config and name != "unet":
            continue
        channels = 3 if name == "unet-gru" else 1
        build = dict(spatial_dims=spatial_dims, in_channels=channels, out_channels=channels, **config)
        net = get_model(name, **build)
        assert model_protocol(name, **build).size_divisor == net.size_divisor, (name, config)
        assert model_protocol(name, **build).preferred_tile is None


def test_the_protocol_of_an_anisotropic_unet_and_a_refused_option():
    assert model_protocol("unet", spatial_dims=3, depth=3, pool_z_levels=1).size_divisor == (2, 8, 8)
    assert model_protocol("unet", spatial_dims=2, depth=3, pool_z_levels=1).size_divisor == 8
    assert model_protocol("cnn", spatial_dims=2, depth=4).size_divisor == 1
    with pytest.raises(ConfigError, match="bad option for model 'unet'"):
        model_protocol("unet", spatial_dims=2, widht=8)
