"""Quality suite: every entry of benchmarks/quality/suite.py through the CLI, side by side with fair references.

For each entry and seed, in one run and with the same CPU threads and the same wall-clock training budget:

* instance (2D and 3D): ``napari-bioimg train / predict / evaluate`` vs the textbook 3-class U-Net + seeded
  watershed (``references/ref_unet.py``, same network size) and Otsu + distance-transform watershed;
* denoise: ours vs a plain Noise2Void script (``references/ref_n2v.py``), scikit-image NL-means (h = 0.8 sigma_est) and
  BM3D (the ``bm3d`` package, sigma estimated as for NL-means) when it is installed;
* scribbles (semantic): ours (60 s) vs an ilastik-style random forest on the same strokes (``references/ref_rf.py``);
* classify: ours vs a plain CNN on object crops (``references/ref_cnn.py``).

Every prediction is scored by the same ``napari-bioimg evaluate`` command; every method's ``wall_s`` is the wall
time from its start to its written result (process start-up included, for ours and the scripts alike).

The protocol (``suite.SPLITS``): without ``--report`` the entries are scored on their *tune* split (explore
freely; ``--out`` folders carry ``split.json``); ``--report`` scores the *locked test* split, with at least 3
seeds, and writes the results file ``benchmarks/results/quality-report-DATE.json`` (+ ``.md``): date, machine,
load, split, seeds, steps and wall time of every run; goals are judged by ``quality_stats``.

    python -m benchmarks.quality.quality --only nuclei2d-hela --seeds 0     # tune split, one seed
    python -m benchmarks.quality.quality --report --only nuclei2d-hela denoise-nuclei-gauss-high   # locked, 3 seeds
    python -m benchmarks.quality.quality --quick                            # smoke run: 8 s per training, tune split
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import tifffile  # noqa: E402

from benchmarks.common import RESULTS, ROOT, child_env  # noqa: E402
from benchmarks.quality import quality_stats, suite  # noqa: E402
from benchmarks.quality.suite import ENTRIES, Entry, load, stack  # noqa: E402


# ---------------------------------------------------------------------------------------------- helpers
def budget(T: float, steps: int | None, ours: bool) -> list:
    """Training budget flags: the same wall-clock seconds, or (``--steps``) the same number of optimizer steps."""
    if steps:
        per = min(50, steps)
        return ["--epochs", max(1, round(steps / per)), "--steps-per-epoch", per] if ours else ["--steps", steps]
    return ["--time-limit", T] if ours else ["--seconds", T]


def run(cmd: list[str], threads: int) -> tuple[str, str, float]:
    env = child_env(OMP_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"command failed: {' '.join(map(str, cmd))}\n{res.stderr[-3000:]}")
    return res.stdout, res.stderr, time.perf_counter() - t0


def cli(args: list, threads: int) -> tuple[str, str, float]:
    return run([sys.executable, "-m", "napari_bioimg.cli", *map(str, args)], threads)


def script(name: str, args: list, threads: int) -> dict:
    """Run the reference ``benchmarks.references.NAME`` with ``args``; its last JSON line, with its wall time."""
    out, _, secs = run([sys.executable, "-m", f"benchmarks.references.{name}", *map(str, args)], threads)
    info = json.loads(out.strip().splitlines()[-1])
    info["wall_s"] = round(secs, 1)
    return info


def evaluate(task: str, pred: Path, truth: Path, axes: str, threads: int) -> dict:
    return json.loads(cli(["evaluate", "--task", task, "--pred", pred, "--truth", truth,
                           *(["--axes", axes] if axes else [])], threads)[0])


def save(path: Path, arr: np.ndarray, axes: str) -> Path:
    tifffile.imwrite(path, arr, metadata={"axes": axes}, compression="zlib")
    return path


def write_items(d: Path, stem: str, items: list, axes: str) -> tuple[list[Path], list[Path], Path, Path | None, str]:
    """Each item on its own (for scripts that take lists) and the CLI's single stacked file."""
    imgs, lbls = [], []
    for k, (im, lb) in enumerate(items):
        imgs.append(save(d / f"{stem}{k}.tif", im, axes))
        if lb is not None:
            lbls.append(save(d / f"{stem}{k}_truth.tif", lb, axes))
    img, framed = stack([im for im, _ in items])
    ax = ("T" + axes) if framed else axes
    one_img = save(d / f"{stem}.tif", img, ax)
    one_lbl = None
    if items[0][1] is not None:
        one_lbl = save(d / f"{stem}_truth.tif", stack([lb for _, lb in items])[0], ax)
    return imgs, lbls, one_img, one_lbl, ax


def object_radius(labels: list[np.ndarray], frames: bool) -> float:
    """Median equivalent radius (px) of the training objects: of 2D objects per frame, else of nD objects."""
    sizes = []
    for lb in labels:
        for x in (lb.reshape(-1, *lb.shape[-2:]) if frames else [lb]):
            c = np.bincount(x.ravel())[1:]
            sizes += list(c[c > 0])
    v = float(np.median(sizes))
    nd = 2 if frames else labels[0].ndim
    return (v / np.pi) ** 0.5 if nd == 2 else (3 * v / (4 * np.pi)) ** (1 / 3)


def otsu_watershed(img: np.ndarray, frames: bool, dark: bool = False, radius: float = 12.0) -> np.ndarray:
    """Classical baseline: smooth, Otsu, distance-transform peaks, seeded watershed (per frame, or in 3D).

    ``dark``: the objects are darker than the background (phase contrast): the image is inverted first.
    ``radius``: the objects' typical radius (from the training labels): seeds at least 0.6 radius apart.
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.segmentation import watershed

    def one(x):
        sm = gaussian(-x.astype(np.float32) if dark else x.astype(np.float32), 2)
        mask = sm > threshold_otsu(sm)
        dist = ndi.distance_transform_edt(mask)
        peaks = peak_local_max(dist, min_distance=max(3, round(0.6 * radius)), labels=ndi.label(mask)[0], exclude_border=False)
        markers = np.zeros(x.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        return watershed(-dist, markers, mask=mask).astype(np.uint32)

    return np.stack([one(f) for f in img]) if frames else one(img)


def nl_means(noisy: np.ndarray, frames: bool) -> np.ndarray:
    from skimage.restoration import denoise_nl_means, estimate_sigma

    def one(f):
        s = float(estimate_sigma(f))
        return denoise_nl_means(f, h=0.8 * s, sigma=s, patch_size=5, patch_distance=6, fast_mode=True,
                                preserve_range=True)

    return (np.stack([one(f) for f in noisy]) if frames else one(noisy)).astype(np.float32)


def _summary(stderr: str) -> dict:
    """The training summary the CLI prints last (steps, best validation score, ...)."""
    for line in reversed(stderr.strip().splitlines()):  # notes may follow the summary
        try:
            s = json.loads(line)
        except ValueError:
            continue
        if isinstance(s, dict) and "steps" in s:
            return s
    return {}


def bm3d_denoise(noisy: np.ndarray, frames: bool) -> np.ndarray | None:
    """BM3D (the ``bm3d`` package) with sigma estimated as for NL-means; ``None`` when it is not installed."""
    try:
        import bm3d
    except ImportError:
        return None
    from skimage.restoration import estimate_sigma

    def one(f):
        f = f.astype(np.float32)
        return bm3d.bm3d(f, sigma_psd=float(estimate_sigma(f)))

    return (np.stack([one(f) for f in noisy]) if frames else one(noisy)).astype(np.float32)


def timed(fn) -> tuple[object, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 1)


def train_ours(args: list, th: int, seed: int) -> dict:
    """``napari-bioimg train`` with a seed: the engine's summary, the process's wall time (``train_s``)."""
    _, log, secs = cli(["train", *args, "--seed", seed, "--quiet", "--threads", th], th)
    return {**_summary(log), "train_s": round(secs, 1)}


def predict_ours(args: list, th: int, info: dict) -> dict:
    """``napari-bioimg predict``; ``wall_s`` of ours = train + predict processes (start to written result)."""
    _, _, secs = cli(["predict", *args, "--quiet", "--threads", th], th)
    return dict(info, predict_s=round(secs, 1), wall_s=round(info["train_s"] + secs, 1))


# ---------------------------------------------------------------------------------------------- per task
def run_instance(e: Entry, d: Path, T: float, th: int, tta: bool, seed: int, split: str) -> dict:
    data = load(e, split, seed)
    _, _, tr_img, tr_lbl, tr_ax = write_items(d, "train", data.train, e.axes)
    tr_files = sorted(d.glob("train[0-9]*.tif"))
    _, _, te_img, te_lbl, te_ax = write_items(d, "test", data.test, e.axes)
    res: dict = {}
    info = train_ours(["--task", "instance", "--image", tr_img, "--labels", tr_lbl, "--axes", tr_ax,
                       *budget(T, STEPS, True), "--out", d / "model.pt"], th, seed)
    info = predict_ours(["--model", d / "model.pt", "--image", te_img, "--axes", te_ax, "--out", d / "ours.tif"],
                        th, info)
    res["ours"] = {**evaluate("instance", d / "ours.tif", te_lbl, te_ax, th), "info": info}
    if tta:
        tinfo = predict_ours(["--model", d / "model.pt", "--image", te_img, "--axes", te_ax, "--out",
                              d / "ours_tta.tif", "--tta"], th, info)
        res["ours --tta"] = {**evaluate("instance", d / "ours_tta.tif", te_lbl, te_ax, th), "info": tinfo}
    pairs = [str(p) for f in tr_files if not f.name.endswith("_truth.tif") for p in (f, f.with_name(f.stem + "_truth.tif"))]
    info = script("ref_unet", ["--train", *pairs, "--test", te_img, "--test-axes", te_ax, "--out", d / "plain.tif",
                                  *budget(T, STEPS, False), "--threads", th, "--seed", seed], th)
    res[quality_stats.REFERENCE["instance"]] = {**evaluate("instance", d / "plain.tif", te_lbl, te_ax, th), "info": info}
    radius = object_radius([lb for _, lb in data.train], frames=e.axes == "YX")
    _, secs = timed(lambda: save(d / "otsu.tif", otsu_watershed(tifffile.imread(te_img), frames=te_ax.startswith("T"),
                                                                dark=e.params.get("dark", False), radius=radius), te_ax))
    res["Otsu + watershed"] = {**evaluate("instance", d / "otsu.tif", te_lbl, te_ax, th), "info": {"wall_s": secs}}
    return res


def run_denoise(e: Entry, d: Path, T: float, th: int, tta: bool, seed: int, split: str) -> dict:
    data = load(e, split, seed)
    _, _, noisy_p, _, ax = write_items(d, "noisy", [(im, None) for im, _ in data.test], e.axes)
    clean_p = save(d / "clean.tif", stack([c for _, c in data.test])[0], ax)
    res: dict = {}
    info = train_ours(["--task", "denoise", "--image", noisy_p, "--axes", ax, *budget(T, STEPS, True),
                       "--out", d / "model.pt"], th, seed)
    info = predict_ours(["--model", d / "model.pt", "--image", noisy_p, "--axes", ax, "--out", d / "ours.tif"],
                        th, info)
    res["ours"] = {**evaluate("denoise", d / "ours.tif", clean_p, ax, th), "info": info}
    if tta:
        tinfo = predict_ours(["--model", d / "model.pt", "--image", noisy_p, "--axes", ax, "--out",
                              d / "ours_tta.tif", "--tta"], th, info)
        res["ours --tta"] = {**evaluate("denoise", d / "ours_tta.tif", clean_p, ax, th), "info": tinfo}
    info = script("ref_n2v", ["--image", noisy_p, "--out", d / "n2v.tif", *budget(T, STEPS, False),
                                 "--threads", th, "--seed", seed], th)
    res["plain N2V"] = {**evaluate("denoise", d / "n2v.tif", clean_p, ax, th), "info": info}
    noisy = tifffile.imread(noisy_p)
    _, secs = timed(lambda: save(d / "nlm.tif", nl_means(noisy, frames=ax.startswith("T")), ax))
    res["NL-means"] = {**evaluate("denoise", d / "nlm.tif", clean_p, ax, th), "info": {"wall_s": secs}}
    out, secs = timed(lambda: bm3d_denoise(noisy, frames=ax.startswith("T")))
    if out is not None:
        save(d / "bm3d.tif", out, ax)
        res["BM3D"] = {**evaluate("denoise", d / "bm3d.tif", clean_p, ax, th), "info": {"wall_s": secs}}
    res["noisy input"] = evaluate("denoise", noisy_p, clean_p, ax, th)
    return res


def run_semantic(e: Entry, d: Path, T: float, th: int, tta: bool, seed: int, split: str) -> dict:
    data = load(e, split, seed)
    limit = min(T, e.params.get("time_limit", T))
    (img, strokes), (test, dense) = data.train[0], data.test[0]
    ip, sp = save(d / "train.tif", img, e.axes), save(d / "strokes.tif", strokes, e.axes)
    tp, gp = save(d / "test.tif", test, e.axes), save(d / "test_truth.tif", dense, e.axes)
    res: dict = {}
    info = train_ours(["--task", "semantic", "--image", ip, "--labels", sp, "--axes", e.axes, "--time-limit", limit,
                       "--out", d / "model.pt"], th, seed)
    info = predict_ours(["--model", d / "model.pt", "--image", tp, "--axes", e.axes, "--out", d / "ours.tif"], th, info)
    res["ours"] = {**evaluate("semantic", d / "ours.tif", gp, e.axes, th), "info": info}
    info = script("ref_rf", ["--image", ip, "--labels", sp, "--test", tp, "--out", d / "rf.tif", "--threads", th,
                                "--seed", seed], th)
    res["random forest"] = {**evaluate("semantic", d / "rf.tif", gp, e.axes, th), "info": info}
    return res


def run_classify(e: Entry, d: Path, T: float, th: int, tta: bool, seed: int, split: str) -> dict:
    data = load(e, split, seed)
    img, objects = data.train[0]
    x = data.extra
    ip, op = save(d / "image.tif", img, "TYX"), save(d / "objects.tif", objects, "TYX")
    for name, ids, cls in (("train.csv", x["train_ids"], x["train_classes"]), ("truth.csv", x["test_ids"],
                                                                                x["test_classes"])):
        with open(d / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label_id", "class"])
            w.writerows(zip(ids.tolist(), [str(c) for c in cls]))
    res: dict = {}
    info = train_ours(["--task", "classify", "--image", ip, "--labels", op, "--classes", d / "train.csv",
                       "--axes", "TYX", *budget(T, STEPS, True), "--out", d / "model.pt"], th, seed)
    info = predict_ours(["--model", d / "model.pt", "--image", ip, "--labels", op, "--axes", "TYX", "--out",
                         d / "ours.csv"], th, dict(info, n_train=len(x["train_ids"])))
    res["ours"] = {**evaluate("classify", d / "ours.csv", d / "truth.csv", "", th), "info": info}
    info = script("ref_cnn", ["--image", ip, "--labels", op, "--classes", d / "train.csv", "--predict",
                                 d / "truth.csv", "--out", d / "plain.csv", *budget(T, STEPS, False), "--threads", th,
                                 "--seed", seed], th)
    res["plain CNN"] = {**evaluate("classify", d / "plain.csv", d / "truth.csv", "", th), "info": info}
    return res


STEPS: int | None = None  # set by --steps: equal optimizer steps instead of equal seconds

RUNNERS = {"instance": run_instance, "denoise": run_denoise, "semantic": run_semantic, "classify": run_classify}


# ---------------------------------------------------------------------------------------------- the run
def machine() -> dict:
    import torch

    return {"node": platform.node(), "platform": platform.platform(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__}


def git_commit() -> str | None:
    """The commit measured (``QUALITY_COMMIT`` when the run is made from an exported copy of the tree)."""
    if os.environ.get("QUALITY_COMMIT"):
        return os.environ["QUALITY_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", action="store_true", help="score the locked test split (3 seeds by default) and "
                    "write the results file under benchmarks/results/")
    ap.add_argument("--seeds", type=int, nargs="+", help="seeds (default: 0 1 2 with --report, else 0)")
    ap.add_argument("--time-limit", type=float, default=120, help="seconds per training, ours and references")
    ap.add_argument("--quick", action="store_true", help="smoke run: 8 s per training")
    ap.add_argument("--steps", type=int, help="train ours and the references for this many optimizer steps "
                    "instead of --time-limit seconds (scribbles keep their time limit): comparisons that do "
                    "not depend on how busy the machine is")
    ap.add_argument("--only", nargs="+", metavar="ENTRY", help="entries (or name prefixes) to run")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for every method (default 2)")
    ap.add_argument("--tta", action="store_true", help="also score ours with predict --tta")
    ap.add_argument("--out", help="working folder (default bench_output/quality, or bench_output/quality-report)")
    ap.add_argument("--results", help="results file (--report; default benchmarks/results/quality-report-DATE.json)")
    ap.add_argument("--list", action="store_true", help="list the entries and exit")
    args = ap.parse_args(argv)
    if args.list:
        for e in ENTRIES.values():
            print(f"{e.name:30s} {e.task:9s} {e.split}")
        return 0
    global STEPS
    T = 8.0 if args.quick else args.time_limit
    STEPS = args.steps
    split = "test" if args.report else "tune"
    seeds = args.seeds or ([0, 1, 2] if args.report else [0])
    if args.report:
        if len(seeds) < quality_stats.MIN_SEEDS:
            raise SystemExit(f"--report needs at least {quality_stats.MIN_SEEDS} seeds")
        suite.unlock_for_report()
    names = [n for n in ENTRIES if not args.only or any(n == o or n.startswith(o) for o in args.only)]
    if not names:
        raise SystemExit(f"no entry matches {args.only}; see --list")
    out = Path(args.out or ("bench_output/quality-report" if args.report else "bench_output/quality"))
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    results_path = Path(args.results) if args.results else (
        RESULTS / f"quality-report-{stamp}.json" if args.report else out / "results.json")
    meta = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
            "commit": git_commit(), "split": split, "seeds": seeds, "entries": names,
            "time_limit_s": None if STEPS else T, "steps": STEPS, "threads": args.threads,
            "command": "python -m benchmarks.quality.quality " + " ".join(sys.argv[1:] if argv is None else argv),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()]}
    entries: list[dict] = []
    t_all = time.perf_counter()
    for n in names:
        e = ENTRIES[n]
        complete = bool(e.params.get("complete", False))
        rec = {"entry": n, "task": e.task, "group": e.group, "split": split, "split_text": e.split,
               "goal": quality_stats.goal_text(e.group, complete), "source": e.source, "runs": [], "errors": []}
        entries.append(rec)
        for seed in seeds:
            d = out / n / f"seed{seed}"
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            (d / "split.json").write_text(json.dumps({"entry": n, "split": split, "seed": seed}))
            t0, load0 = time.perf_counter(), os.getloadavg()
            try:
                methods = RUNNERS[e.task](e, d, T, args.threads, args.tta, seed, split)
            except Exception:  # one broken run must not lose the others
                err = traceback.format_exc()
                print(f"{n} seed {seed}: FAILED\n{err}", file=sys.stderr, flush=True)
                rec["errors"].append({"seed": seed, "error": err[-3000:]})
                continue
            rec["runs"].append({"seed": seed, "methods": methods, "seconds": round(time.perf_counter() - t0, 1),
                                "loadavg_start": [round(x, 2) for x in load0],
                                "loadavg_end": [round(x, 2) for x in os.getloadavg()]})
            rec["summary"] = quality_stats.summarize(e.task, e.group, complete, rec["runs"])
            key = quality_stats.METRIC[e.task][0]
            print(f"{n} seed {seed}: " + ", ".join(f"{m} {r.get(key)}" for m, r in methods.items()) +
                  f" ({rec['runs'][-1]['seconds']} s, load {rec['runs'][-1]['loadavg_start']})", flush=True)
            meta.update(loadavg_end=[round(x, 2) for x in os.getloadavg()],
                        wall_s=round(time.perf_counter() - t_all, 1))
            write_results(results_path, meta, entries)
    write_results(results_path, meta, entries)
    print("\n" + results_path.with_suffix(".md").read_text())
    return 1 if any(r["errors"] for r in entries) else 0


def write_results(path: Path, meta: dict, entries: list[dict]) -> None:
    """The results file (JSON) and its tables (``.md``), rewritten after every run so a stopped run keeps its rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "entries": entries}, indent=1, default=float))
    done = [e for e in entries if e["runs"]]
    m = meta
    per = f"{m['steps']} steps" if m["steps"] else f"{m['time_limit_s']:g} s"
    text = "\n".join([
        f"Split: **{m['split']}**; seeds {m['seeds']}; {per} per training; {m['threads']} threads; "
        f"{m['machine']['cpus']} CPUs ({m['machine']['platform']}); load average at start {m['loadavg_start']}, "
        f"at end {m.get('loadavg_end')}; started {m['date_utc']}; commit {m['commit']}; whole run {m.get('wall_s')} s.",
        "", quality_stats.table(done), "", quality_stats.cost_table(done)])
    failed = [f"{e['entry']} seed {x['seed']}" for e in entries for x in e["errors"]]
    if failed:
        text += "\n\nFAILED: " + ", ".join(failed)
    path.with_suffix(".md").write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
