"""``napari-bioimg demo`` (what ``scripts/demo.sh`` runs): the numbers and the screenshot tell the run that was made."""

import json
import time

import pytest


@pytest.fixture
def quick_demo(monkeypatch):
    """The demo on 2 training and 2 test slices (the same code path, seconds instead of minutes)."""
    from napari_bioimg.cli import demo

    monkeypatch.setattr(demo, "TRAIN", slice(10, 12))
    monkeypatch.setattr(demo, "TEST", slice(19, 21))
    return demo


def test_demo_reports_the_wait_and_shows_the_time_limit_it_used(quick_demo, qapp, tmp_path, monkeypatch):
    import napari

    shown = {}
    show_settings, take = quick_demo.show_settings, napari.Viewer.screenshot

    def remember_form(form, config):
        show_settings(form, config)
        shown["form"] = form

    def screenshot(viewer, path, *args, **kwargs):  # what the picture shows, read when it is taken
        shown["time_limit"] = shown["form"].time_limit.value
        shown["epochs"] = shown["form"].epochs.value
        return take(viewer, path, *args, **kwargs)

    monkeypatch.setattr(quick_demo, "show_settings", remember_form)
    monkeypatch.setattr(napari.Viewer, "screenshot", screenshot)
    started = time.time()
    assert quick_demo.run_demo(tmp_path, time_limit=3, device="cpu") == 0
    report = json.loads((tmp_path / "metrics.json").read_text())
    model_written = (tmp_path / "model.pt").stat().st_mtime - started
    # what the user waited for the model: start to written file (set-up, training, calibration, saving)...
    assert report["train_seconds"] == pytest.approx(model_written, abs=0.3)
    # ...of which the training clock, the one the time limit counts (its end included), is a part
    assert 1.5 <= report["training_clock_seconds"] <= min(3 * 1.02 + 0.3, report["train_seconds"])
    assert report["time_limit"] == 3
    assert (tmp_path / "screenshot.png").stat().st_size > 0
    assert shown["time_limit"] == 3 and shown["epochs"] == 0  # not the form's 120
