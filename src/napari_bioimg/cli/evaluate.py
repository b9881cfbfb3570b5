"""``napari-bioimg evaluate``: score a prediction against ground truth; the report as JSON on stdout."""

from __future__ import annotations

import json
import sys


def cmd_evaluate(args) -> int:
    import numpy as np

    from ..core.data.io import read_image
    from ..core.errors import InputError
    from ..core.metrics import image_scores, matching, matching_stack, semantic_scores
    from ..core.tasks import get_task

    task = get_task(args.task)  # the scores follow what the task makes
    if task.predicts_items:
        print(json.dumps(_evaluate_classes(args), indent=2))
        return 0
    pred, _ = read_image(args.pred)
    truth, _ = read_image(args.truth)
    if pred.shape != truth.shape:
        raise InputError(f"prediction shape {pred.shape} differs from ground truth {truth.shape}")
    if task.instance_labels:
        axes = (args.axes or "").upper()
        if axes and axes[0] in "TS" and pred.ndim >= 3:
            m = matching_stack(list(truth), list(pred))
        else:
            m = matching(truth, pred)
        at = m["thresholds"]["0.5"]
        report = {"task": "instance", "n_true": m["n_true"], "n_pred": m["n_pred"], "f1": at["f1"],
                  "precision": at["precision"], "recall": at["recall"],
                  "mean_ap": float(np.mean([v["ap"] for v in m["thresholds"].values()])),
                  "thresholds": m["thresholds"]}
    elif task.output_kind == "labels":
        report = {"task": "semantic", **semantic_scores(truth, pred, ignore_zero=not args.include_zero)}
    elif task.output_kind == "image":
        scores = image_scores(pred, truth, args.axes)
        # identical images have an infinite PSNR, which strict JSON cannot hold
        report = {"task": args.task, **{k: (v if np.isfinite(v) else None) for k, v in scores.items()}}
    else:
        raise InputError(f"evaluate does not know task {args.task!r}; use instance, semantic, classify, "
                         "classify-image, denoise, restore or reconstruct")
    print(json.dumps(report, indent=2))
    return 0


def _evaluate_classes(args) -> dict:
    """Join prediction and truth tables on the id column and score the common ids."""
    from ..core.data.annotations import FRAME_COLUMNS, ID_COLUMNS, classes_from_table, unify_class_values
    from ..core.data.io import read_table
    from ..core.errors import InputError
    from ..core.metrics import classification_scores

    id_columns = tuple(dict.fromkeys(ID_COLUMNS + FRAME_COLUMNS))
    pred = classes_from_table(read_table(args.pred), id_columns)
    truth = classes_from_table(read_table(args.truth), id_columns)
    for name, ann in (("prediction", pred), ("truth", truth)):
        for w in ann.warnings:
            print(f"warning ({name}): {w}", file=sys.stderr)
    common = sorted(set(pred.classes) & set(truth.classes))
    if not common:
        raise InputError("the prediction and the truth share no ids: check that both tables number the same objects")
    missing = sorted(set(truth.classes) - set(pred.classes))
    if missing:
        print(f"warning: {len(missing)} id(s) of the truth have no prediction and are not scored", file=sys.stderr)
    values = unify_class_values([truth.classes[i] for i in common] + [pred.classes[i] for i in common])
    t, p = values[: len(common)], values[len(common):]
    scores = classification_scores(t, p, sorted(set(values)))
    return {"task": args.task, "n_truth": len(truth.classes), "n_missing": len(missing), **scores}
