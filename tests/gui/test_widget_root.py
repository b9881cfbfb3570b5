"""GUI tier, the widget's root as a specification: every event the engine yields has a row in the widget's
handler table (none is dropped silently), jobs are of a kind from one enum, and a run's fields say what they hold."""

import inspect
import typing

import pytest


def _engine_event_types() -> set[type]:
    """Every class :mod:`napari_bioimg.core.events` defines, but the value a training returns (not an event)."""
    from napari_bioimg.core import events as E

    defined = {cls for _, cls in inspect.getmembers(E, inspect.isclass) if cls.__module__ == E.__name__}
    return defined - {E.TrainResult}


def test_every_engine_event_has_a_handler_in_the_widgets_table(widget):
    from napari_bioimg._qt.jobs import CopyProgress, ImageResult, Received
    from napari_bioimg.core import events as E

    events = _engine_event_types()
    assert {E.StepDone, E.Notice, E.LivePreview} <= events  # the reader finds them (this test can fail)
    table = widget.display.handlers
    missing = sorted(cls.__name__ for cls in events if cls not in table)
    assert not missing, f"events the widget would drop: {missing} (add a row to RunDisplay.handlers)"
    assert {ImageResult, CopyProgress, Received, type(None)} <= set(table)  # the workers' own, live's heartbeat


def test_a_handler_table_hands_each_event_to_its_row_and_drops_others():
    from napari_bioimg._qt.dispatch import Handlers
    from napari_bioimg.core import events as E

    seen = []
    table = Handlers({E.Notice: lambda run, ev: seen.append((run, ev.message))})
    assert table("run", E.Notice("careful")) and seen == [("run", "careful")]
    assert not table("run", E.LiveWaiting("no strokes")) and len(seen) == 1


def test_jobs_are_of_one_enum_and_a_run_is_a_train_or_predict_job():
    from napari_bioimg._qt.session import RUNS, Job, Run

    def run(job):
        return Run(job=job, task="semantic", model="unet", label="unet", output_kind="labels", axes="YX",
                   spatial_dims=2, samples=[])

    assert run("train").job is Job.TRAIN and run(Job.PREDICT).job is Job.PREDICT
    for wrong in ("training", Job.SAVE):  # a misspelt kind is refused where the run is made, not compared false later
        with pytest.raises(ValueError):
            run(wrong)
    assert RUNS == {Job.TRAIN, Job.PREDICT}
    assert {Job.TRAIN: "worker"}.get("train") == "worker" and f"{Job.EMBED}" == "embed"  # scripts' spelling works


def test_a_runs_fields_say_what_they_hold():
    from napari_bioimg._qt.session import Run

    hints = typing.get_type_hints(Run)
    assert "last" in hints and "control" in hints
    assert [name for name, hint in hints.items() if hint is typing.Any] == []
