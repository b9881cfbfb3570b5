"""The dock widget's status prose: every sentence the status line says about a run, as plain functions.

No widgets here: each function takes a run (:class:`~.session.Run`) or an engine event and returns the
words; the widget's parts decide where they are shown (:mod:`.notices` decides which also pop up).
"""

from __future__ import annotations

from .guidance import model_words

NBSP = "\u00a0"

SMALL_VALIDATION = {"pixels": 50_000, "objects": 30, "frames": 10}
"""Below these validation-set sizes the scores get a caveat: a handful of objects makes any score noisy."""


"""Tasks that learn from the image itself (or a target image): nothing to annotate."""


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def part(*words) -> str:
    """One part of a status line: its words never wrap apart (only the " · " between parts does)."""
    return NBSP.join(str(w) for w in words if w != "")


def line(*parts: str) -> str:
    return " · ".join(p for p in parts if p)


def fmt_count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e4 else f"{n:,}"


def validation_size(run) -> tuple[int, str] | None:
    """How many pixels / objects / frames the run's validation scores rest on.

    Uses the validation event's own ``size`` (and ``unit``) when the engine gives them; else the
    classification report's ``n``; else the held-apart pixels announced when training started.
    """
    val, started = run.val, run.started
    n = getattr(val, "size", None)
    unit = getattr(val, "unit", None) if n is not None else None
    if n is None and val is not None and val.report:
        n, unit = val.report.get("n"), getattr(started, "unit", None)
    if n is None and started is not None:
        n, unit = started.n_val_pixels, getattr(started, "unit", None)
    unit = unit or "pixels"
    return (int(n), unit) if n is not None else None


def validation_note(run) -> tuple[str, str | None]:
    """``("validated on 9.8k pixels", caveat or None)`` for the run's validation set."""
    size = validation_size(run)
    if size is None:
        return "", None
    n, unit = size
    from ..core.tasks import find_task

    task = find_task(getattr(run, "task", None))  # None: a foreign model's, whose run says what it makes
    kind = task.output_kind if task is not None else getattr(run, "output_kind", None)
    annotated = kind != "image"  # an image-to-image run learns from the image itself
    if n == 0:
        held = "no annotations were" if annotated else "nothing was"
        return "no validation set", f"{held} held apart: the scores say nothing; raise Validation %"
    text = f"on {fmt_count(n)} {unit if n != 1 else unit.rstrip('s')}"
    small = n < SMALL_VALIDATION.get(unit, 0)
    more = "annotate more, or raise Validation %" if annotated else "raise Validation %, or use a bigger image"
    caveat = f"too small a validation set to trust the scores: check the result by eye ({more})" if small else None
    return text, caveat


def training_line(run, clock: str | None = None) -> str:
    """The status line while training: the latest score (and on how much), step, loss, speed, ETA (or the
    live session's ``clock``), preview."""
    ev, val = run.last, run.val
    parts = [part(k.replace("_", " "), f"{v:.3g}") for k, v in list(val.metrics.items())[:1]] if val else []
    size, caveat = validation_note(run)
    if parts and size:
        parts[-1] += NBSP + part(f"({size}{', few' if caveat else ''})")
    parts += [part("step", ev.step), part("loss", f"{ev.loss:.3g}"),
              part(f"{ev.steps_per_second:.1f}", "it/s"), clock or part("ETA", fmt_time(ev.eta))]
    text = line(*parts)
    return text + "\n" + preview_note(run) if run.preview is not None else text


def trained_summary(run, result) -> str:
    """What a training came to: steps, time, scores, on how much they rest and how far to trust them."""
    metrics = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in result.metrics.items() if k != "best_score")
    how = "stopped" if result.stopped_early else "finished"
    size, caveat = validation_note(run)
    text = f"Training {how}: {result.steps} steps in {result.seconds:.0f} s. {metrics}"
    if metrics and size:
        text += f" (validated {size})"
    return text + (f". Caution: {caveat}." if caveat and metrics else ".")


def preview_note(run) -> str:
    """What the preview layer shows: the model at a step of training (early ones look rough)."""
    ev, last = run.preview, run.last
    at = last.elapsed if last is not None and last.step == ev.step else None
    when = f"step {ev.step}" + (f", {fmt_time(at)} of training" if at is not None else "")
    early = ": an early model, it sharpens as training goes on" if last is None or \
        (last.fraction or 0) < 0.5 else ""
    return f"Preview: the model at {when}{early} (the final result replaces it)."



# ---------------------------------------------------------------- what the widget says about a run
STOPPING = "Stopping…"


def ready_for_list(pairs: int) -> str:
    """The next step when the Training data list holds ``pairs`` image / annotation pairs."""
    return f"Ready: Train on the {pairs} pair(s) of the Training data list."


def starting(run, model: str, task_label: str) -> str:
    """Train was pressed: what starts, on what."""
    how = "Continuing" if run.fine_tune else "Starting"
    on = run.sample.image_name if len(run.samples) == 1 else f"{len(run.samples)} images"
    return f"{how} {model} ({task_label}) on {on}…"


def training_started(run, ev) -> str:
    """A :class:`~napari_bioimg.core.events.TrainingStarted`: the device, the network's size, the patch, the
    validation set."""
    size, _ = validation_note(run)
    return line(f"Training on {ev.device}: {ev.n_parameters:,} parameters",
                part("patch", "×".join(map(str, ev.patch_size))), f"validation {size}" if size else "")


def validation_label(run, ev) -> str:
    """The loss plot's name for a :class:`~napari_bioimg.core.events.ValidationDone`'s first metric."""
    name = next(iter(ev.metrics), "score")
    size, _ = validation_note(run)
    return f"{name} ({size})" if size else name


def predicting(run, ev) -> str:
    """A :class:`~napari_bioimg.core.events.PredictProgress`: which image (or how many tiles), and the ETA."""
    done = (f"image {min(len(run.parts), 1 + ev.done * len(run.parts) // max(ev.total, 1))} of "
            f"{len(run.parts)}" if run.parts else part(f"{ev.done}/{ev.total}", ev.stage))
    return line(part("Predicting:", done), part("ETA", fmt_time(run.eta())))


def saving(ev) -> str:
    """A :class:`~.jobs.CopyProgress`: chunks of a result store copied so far."""
    return line(part("Saving:", f"{ev.done}/{ev.total}", "chunks"))


def paused(run) -> str:
    at = f" at step {run.last.step}" if run is not None and run.last is not None else ""
    return f"Paused{at}; the time budget is on hold. Resume or Stop."


def failed(run, message: str) -> str:
    """A run's error, in words that say the user's layers are safe."""
    job = getattr(run, "job", None)
    what = {"train": "training", "predict": "prediction"}.get(job, "the last action")
    return f"{what} failed: {message}. Your layers are unchanged."


def after_failure(failure: str, text: str) -> str:
    """``text`` under the last run's error (which stays until the next run starts)."""
    return f"Error: {failure}\n{text}" if failure else text


def image_closed(run, layer) -> str:
    """Training ended but its image was closed meanwhile: nothing was predicted (``layer``: the preview kept)."""
    kept = f" '{layer.name}' holds only an early preview." if layer is not None else ""
    return (f"{run.summary}\nThe image '{run.sample.image_name}' was closed during training, so nothing was "
            f"predicted.{kept} The model is kept: Save it, or pick an image and Predict.")


def predict_tooltip(model, busy: bool, image) -> str:
    """The Predict button's tooltip: why it is disabled, or what it will do."""
    return ("Train a model or Load one first" if model is None else
            "Busy: wait for the current run, or Stop it" if busy else
            "Pick an image to predict" if image is None else
            f"Predict '{image.name}' with the current model: {model_words(model.card)}")
