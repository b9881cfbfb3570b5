"""What a finished prediction shows: the result layer(s), the class legend, one status line."""

from __future__ import annotations

import numpy as np

from . import classes as C


def nothing_found(training, n: int) -> str:
    """What to say when a prediction found no objects (``n`` 0, or 1 covering the image): train longer."""
    found = "no objects" if n == 0 else "one object covering the whole image, i.e. no objects"
    last = getattr(training, "last", None)
    if last is None:  # a loaded or built-in model
        return (f"{found}. The model may not suit this image: check the image and its scale, or train it on a "
                "few annotated objects (Continue).")
    stopped = ", stopped early," if training.control.stop_requested else ""
    return (f"{found}: the model trained for {last.elapsed:.0f} s{stopped} ({last.step} steps) found no objects "
            "yet. Train longer (a higher Time limit) or press Continue.")


def show_prediction(run, returned, results, legend, status) -> None:
    """Put a prediction's result where the user sees it and say what it is (main thread).

    Parameters
    ----------
    run : Run
        The prediction run (``run.parts`` when several images were predicted).
    returned : tuple
        ``(result, scores)`` from the prediction job.
    results : ResultLayers
    legend : ClassLegend
    status : StatusLine
    """
    from ..core.data.zarrio import store_location
    from ..core.tasks import ClassPrediction, find_task

    result, scores = returned
    if run.parts:
        names = [p.result_name for p in run.parts[:result]]
        stopped = "" if result == len(run.parts) else f" (stopped: {len(run.parts) - result} not predicted)"
        status.value = f"Predicted {result} image(s) into their own layers{stopped}: {', '.join(names)}."
    elif result is None:
        status.value = "Prediction cancelled."
    elif isinstance(result, ClassPrediction):
        layer = results.show_classes(run, result)
        if layer is not None:
            entries = C.legend_entries(result)
            legend.show_entries(entries, layer.name)
            what = "objects" if run.objects is not None else "frames"
            status.value = f"Classified {len(result.ids)} {what} into layer '{layer.name}'."
    elif not isinstance(result, np.ndarray):  # a zarr store written block by block: shown lazily
        layer = results.show_lazy(run, result)
        if layer is not None:
            store = results.store_of(layer)
            where = (f"a temporary folder, {store}, removed when the layer or the window closes: "
                     "Save result as OME-Zarr… keeps it" if store is not None else store_location(result))
            status.info(f"Prediction in layer '{layer.name}', shown from {where}.", notify=True)
    else:
        layer = results.show(run, result)
        if layer is not None:
            extra = ""
            task = find_task(run.task)
            if run.output_kind == "labels" and task is not None and task.instance_labels:  # counted in objects
                n = int(result.max()) if result.size else 0
                extra = f": {n} object{'s' if n != 1 else ''}"
                if n == 0 or (n == 1 and np.count_nonzero(result) >= 0.9 * result.size):
                    status.warn(f"Prediction in layer '{layer.name}': {nothing_found(run.follows, n)}")
                    return
            if scores:
                run.scores = scores
                extra = (f": PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.3f} against "
                         f"'{run.sample.reference_name}' (input: {scores['input_psnr']:.2f} dB, "
                         f"{scores['input_ssim']:.3f})")
            status.value = f"Prediction in layer '{layer.name}'{extra}."
