"""Statistics of the quality report: per-method mean and spread over seeds, each goal clause judged on the
per-seed margins, and the Markdown tables written next to the results file.

A goal clause is "ours >= bound", the bound a number (0.95) or a reference's score of the *same seed* plus an
offset. For each seed the margin ``ours - bound`` is computed; the clause is met only when the mean margin is
larger than its spread (the sample standard deviation over the seeds), so a pass inside the noise between
seeds is not a pass. With fewer than 3 seeds nothing is judged (``met: None``).
"""

from __future__ import annotations

import numpy as np

MIN_SEEDS = 3
METRIC = {"instance": ("f1", "F1@0.5"), "denoise": ("psnr", "PSNR dB"), "semantic": ("mean_iou", "mIoU"),
          "classify": ("accuracy", "accuracy")}
REFERENCE = {"instance": "3-class U-Net + watershed", "denoise": "plain N2V", "semantic": "random forest",
             "classify": "plain CNN"}
CLASSICAL = {"instance": "Otsu + watershed", "denoise": "NL-means"}


def clauses(group: str, complete: bool) -> list[tuple[str, str | None, float]]:
    """The goal of an entry group as clauses ``(text, reference method or None, offset)``: ours >= ref + offset
    (or >= offset when there is no reference)."""
    if group == "2d":
        return [(f"{REFERENCE['instance']} + 0.03", REFERENCE["instance"], 0.03)] + ([("0.95", None, 0.95)]
                                                                                    if complete else [])
    if group == "3d":
        return [("0.85", None, 0.85), (f"{REFERENCE['instance']} + 0.03", REFERENCE["instance"], 0.03)]
    if group == "denoise":
        return [("NL-means + 1.0 dB", "NL-means", 1.0), ("plain N2V + 0.3 dB", "plain N2V", 0.3)]
    if group == "scribbles":
        return [("random forest", "random forest", 0.0)]
    return [("0.93", None, 0.93), ("plain CNN + 0.03", "plain CNN", 0.03)]


def goal_text(group: str, complete: bool) -> str:
    return " and ".join(f">= {t}" for t, _, _ in clauses(group, complete))


def _value(run: dict, method: str, key: str) -> float | None:
    v = run["methods"].get(method, {}).get(key)
    return None if v is None else float(v)


def spread(values: list[float]) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def summarize(task: str, group: str, complete: bool, runs: list[dict]) -> dict:
    """Mean, spread and values per method, and each goal clause judged on the per-seed margins."""
    key, label = METRIC[task]
    methods = sorted({m for r in runs for m in r["methods"]})
    per = {}
    for m in methods:
        vals = [v for v in (_value(r, m, key) for r in runs) if v is not None]
        walls = [r["methods"][m].get("info", {}).get("wall_s") for r in runs if m in r["methods"]]
        steps = [r["methods"][m].get("info", {}).get("steps") for r in runs if m in r["methods"]]
        per[m] = {"mean": float(np.mean(vals)) if vals else None, "spread": spread(vals), "values": vals,
                  "wall_s": [w for w in walls if w is not None], "steps": [s for s in steps if s is not None]}
    judged = []
    for text, ref, offset in clauses(group, complete):
        margins = []
        for r in runs:
            ours = _value(r, "ours", key)
            bound = offset if ref is None else (None if _value(r, ref, key) is None else _value(r, ref, key) + offset)
            if ours is not None and bound is not None:
                margins.append(ours - bound)
        mean, sd = (float(np.mean(margins)) if margins else None), spread(margins)
        met = None if len(margins) < MIN_SEEDS else bool(mean > sd)
        judged.append({"clause": f"ours >= {text}", "margin_mean": mean, "margin_spread": sd, "n": len(margins),
                       "met": met})
    verdicts = [c["met"] for c in judged]
    met = None if any(v is None for v in verdicts) else all(verdicts)
    return {"metric": key, "metric_label": label, "methods": per, "clauses": judged, "met": met}


def _pm(s: dict | None, nd: int) -> str:
    if not s or s["mean"] is None:
        return "-"
    sd = "" if s["spread"] is None else f" ± {s['spread']:.{nd}f}"
    return f"{s['mean']:.{nd}f}{sd}"


def _range(xs: list) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "-"
    lo, hi = min(xs), max(xs)
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


def table(entries: list[dict]) -> str:
    """One row per entry: ours and every reference as mean ± spread over seeds, the goal and the verdict."""
    lines = ["| entry | metric | seeds | ours | fair reference | classical | other | goal (per-seed margin: mean ± "
             "spread) | met |", "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for e in entries:
        s, task = e["summary"], e["task"]
        nd = 2 if task == "denoise" else 3
        ref, cls = REFERENCE[task], CLASSICAL.get(task)
        others = [m for m in s["methods"] if m not in ("ours", ref, cls, "noisy input")]
        other = "; ".join(f"{m} {_pm(s['methods'][m], nd)}" for m in others) or "-"
        goal = "; ".join(f"{c['clause']} ({_pm({'mean': c['margin_mean'], 'spread': c['margin_spread']}, nd)})"
                         for c in s["clauses"])
        met = {True: "yes", False: "**no**", None: "not judged (< 3 seeds)"}[s["met"]]
        lines.append(f"| {e['entry']} | {s['metric_label']} | {len(e['runs'])} | {_pm(s['methods'].get('ours'), nd)} "
                     f"| {ref} {_pm(s['methods'].get(ref), nd)} | "
                     f"{'-' if not cls else cls + ' ' + _pm(s['methods'].get(cls), nd)} | {other} | {goal} | {met} |")
    return "\n".join(lines)


def cost_table(entries: list[dict]) -> str:
    """Steps and wall time (start to written result) of every method, per entry, as ranges over the seeds."""
    lines = ["| entry | method | steps | wall s (start to written result) |", "|---|---|---:|---:|"]
    for e in entries:
        for m, s in e["summary"]["methods"].items():
            if m != "noisy input":
                lines.append(f"| {e['entry']} | {m} | {_range(s['steps'])} | {_range(s['wall_s'])} |")
    return "\n".join(lines)
