"""The npe2 manifest is shipped, valid, and every command it names imports."""

import importlib

import numpy as np
from npe2 import PluginManifest


def test_manifest_valid_and_commands_import():
    pm = PluginManifest.from_distribution("napari-bioimg")
    assert pm.name == "napari-bioimg"
    for cmd in pm.contributions.commands:
        module, attr = cmd.python_name.split(":")
        assert callable(getattr(importlib.import_module(module), attr)), cmd.python_name
    keys = {s.key for s in pm.contributions.sample_data}
    assert {"nuclei", "nuclei_3d"} <= keys


def test_sample_data_layers():
    from napari_bioimg._sample_data import nuclei_2d, nuclei_3d

    (img, imeta, ikind), (lbl, lmeta, lkind) = nuclei_2d()
    assert (ikind, lkind) == ("image", "labels") and img.shape == lbl.shape == (256, 256)
    assert len(np.unique(lbl)) > 10
    (vol, _, _), (vlbl, _, _) = nuclei_3d()
    assert vol.ndim == 3 and vol.shape == vlbl.shape
