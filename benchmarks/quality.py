"""Quality suite: every entry of benchmarks/suite.py through the CLI, side by side with plain references.

For each entry, in one run and with the same CPU threads and the same wall-clock training budget:

* instance (2D and 3D): ``napari-bioimg train / predict / evaluate`` vs the textbook U-Net script
  (``ref_unet.py``) and Otsu + distance-transform watershed;
* denoise: ours vs a plain Noise2Void script (``ref_n2v.py``) and scikit-image NL-means (h = 0.8 sigma_est);
* scribbles (semantic): ours (60 s) vs an ilastik-style random forest on the same strokes (``ref_rf.py``);
* classify: ours vs a plain CNN on object crops (``ref_cnn.py``).

Every prediction is scored by the same ``napari-bioimg evaluate`` command. Prints a Markdown table with each
row against its goal and writes ``results.json`` (and ``results.md``) under ``--out``.

    python benchmarks/quality.py                      # all entries, 120 s per training (about 75 min on 2 cores)
    python benchmarks/quality.py --quick              # smoke run: 8 s per training
    python benchmarks/quality.py --only nuclei2d-dsb denoise-nuclei --time-limit 60
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from suite import ENTRIES, Entry, load, stack  # noqa: E402


# ---------------------------------------------------------------------------------------------- helpers
def budget(T: float, steps: int | None, ours: bool) -> list:
    """Training budget flags: the same wall-clock seconds, or (``--steps``) the same number of optimizer steps."""
    if steps:
        per = min(50, steps)
        return ["--epochs", max(1, round(steps / per)), "--steps-per-epoch", per] if ours else ["--steps", steps]
    return ["--time-limit", T] if ours else ["--seconds", T]


def run(cmd: list[str], threads: int) -> tuple[str, str, float]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT / "src"))
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"command failed: {' '.join(map(str, cmd))}\n{res.stderr[-3000:]}")
    return res.stdout, res.stderr, time.perf_counter() - t0


def cli(args: list, threads: int) -> tuple[str, str, float]:
    return run([sys.executable, "-m", "napari_bioimg.cli", *map(str, args)], threads)


def script(name: str, args: list, threads: int) -> dict:
    out, _, secs = run([sys.executable, str(HERE / name), *map(str, args)], threads)
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
    try:
        s = json.loads(stderr.strip().splitlines()[-1])
        return s if isinstance(s, dict) else {}
    except (ValueError, IndexError):
        return {}


# ---------------------------------------------------------------------------------------------- per task
def run_instance(e: Entry, d: Path, T: float, th: int, tta: bool) -> dict:
    data = load(e)
    _, _, tr_img, tr_lbl, tr_ax = write_items(d, "train", data.train, e.axes)
    tr_files = sorted(d.glob("train[0-9]*.tif"))
    _, _, te_img, te_lbl, te_ax = write_items(d, "test", data.test, e.axes)
    res: dict = {}
    _, log, secs = cli(["train", "--task", "instance", "--image", tr_img, "--labels", tr_lbl, "--axes", tr_ax,
                        *budget(T, STEPS, True), "--out", d / "model.pt", "--quiet", "--threads", th], th)
    info = {**_summary(log), "train_s": round(secs, 1)}
    cli(["predict", "--model", d / "model.pt", "--image", te_img, "--axes", te_ax, "--out", d / "ours.tif",
         "--quiet", "--threads", th], th)
    res["ours"] = {**evaluate("instance", d / "ours.tif", te_lbl, te_ax, th), "info": info}
    if tta:
        cli(["predict", "--model", d / "model.pt", "--image", te_img, "--axes", te_ax, "--out", d / "ours_tta.tif",
             "--quiet", "--threads", th, "--tta"], th)
        res["ours --tta"] = {**evaluate("instance", d / "ours_tta.tif", te_lbl, te_ax, th), "info": info}
    pairs = [str(p) for f in tr_files if not f.name.endswith("_truth.tif") for p in (f, f.with_name(f.stem + "_truth.tif"))]
    info = script("ref_unet.py", ["--train", *pairs, "--test", te_img, "--test-axes", te_ax, "--out", d / "plain.tif",
                                  *budget(T, STEPS, False), "--threads", th], th)
    res["plain U-Net"] = {**evaluate("instance", d / "plain.tif", te_lbl, te_ax, th), "info": info}
    test = tifffile.imread(te_img)
    radius = object_radius([lb for _, lb in data.train], frames=e.axes == "YX")
    save(d / "otsu.tif", otsu_watershed(test, frames=te_ax.startswith("T"), dark=e.params.get("dark", False),
                                        radius=radius), te_ax)
    res["Otsu + watershed"] = evaluate("instance", d / "otsu.tif", te_lbl, te_ax, th)
    return res


def run_denoise(e: Entry, d: Path, T: float, th: int, tta: bool) -> dict:
    data = load(e)
    _, _, noisy_p, _, ax = write_items(d, "noisy", [(im, None) for im, _ in data.test], e.axes)
    clean_p = save(d / "clean.tif", stack([c for _, c in data.test])[0], ax)
    res: dict = {}
    _, log, secs = cli(["train", "--task", "denoise", "--image", noisy_p, "--axes", ax, *budget(T, STEPS, True),
                        "--out", d / "model.pt", "--quiet", "--threads", th], th)
    info = {**_summary(log), "train_s": round(secs, 1)}
    cli(["predict", "--model", d / "model.pt", "--image", noisy_p, "--axes", ax, "--out", d / "ours.tif", "--quiet",
         "--threads", th], th)
    res["ours"] = {**evaluate("denoise", d / "ours.tif", clean_p, ax, th), "info": info}
    if tta:
        cli(["predict", "--model", d / "model.pt", "--image", noisy_p, "--axes", ax, "--out", d / "ours_tta.tif",
             "--quiet", "--threads", th, "--tta"], th)
        res["ours --tta"] = {**evaluate("denoise", d / "ours_tta.tif", clean_p, ax, th), "info": info}
    info = script("ref_n2v.py", ["--image", noisy_p, "--out", d / "n2v.tif", *budget(T, STEPS, False),
                                 "--threads", th], th)
    res["plain N2V"] = {**evaluate("denoise", d / "n2v.tif", clean_p, ax, th), "info": info}
    t0 = time.perf_counter()
    save(d / "nlm.tif", nl_means(tifffile.imread(noisy_p), frames=ax.startswith("T")), ax)
    res["NL-means"] = {**evaluate("denoise", d / "nlm.tif", clean_p, ax, th),
                       "info": {"seconds": round(time.perf_counter() - t0, 1)}}
    res["noisy input"] = evaluate("denoise", noisy_p, clean_p, ax, th)
    return res


def run_semantic(e: Entry, d: Path, T: float, th: int, tta: bool) -> dict:
    data = load(e)
    limit = min(T, e.params.get("time_limit", T))
    (img, strokes), (test, dense) = data.train[0], data.test[0]
    ip, sp = save(d / "train.tif", img, e.axes), save(d / "strokes.tif", strokes, e.axes)
    tp, gp = save(d / "test.tif", test, e.axes), save(d / "test_truth.tif", dense, e.axes)
    res: dict = {}
    _, log, secs = cli(["train", "--task", "semantic", "--image", ip, "--labels", sp, "--axes", e.axes,
                        "--time-limit", limit, "--out", d / "model.pt", "--quiet", "--threads", th], th)
    info = {**_summary(log), "train_s": round(secs, 1)}
    cli(["predict", "--model", d / "model.pt", "--image", tp, "--axes", e.axes, "--out", d / "ours.tif", "--quiet",
         "--threads", th], th)
    res["ours"] = {**evaluate("semantic", d / "ours.tif", gp, e.axes, th), "info": info}
    info = script("ref_rf.py", ["--image", ip, "--labels", sp, "--test", tp, "--out", d / "rf.tif", "--threads", th], th)
    res["random forest"] = {**evaluate("semantic", d / "rf.tif", gp, e.axes, th), "info": info}
    return res


def run_classify(e: Entry, d: Path, T: float, th: int, tta: bool) -> dict:
    data = load(e)
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
    _, log, secs = cli(["train", "--task", "classify", "--image", ip, "--labels", op, "--classes", d / "train.csv",
                        "--axes", "TYX", *budget(T, STEPS, True), "--out", d / "model.pt", "--quiet", "--threads", th], th)
    info = {**_summary(log), "train_s": round(secs, 1), "n_train": len(x["train_ids"])}
    cli(["predict", "--model", d / "model.pt", "--image", ip, "--labels", op, "--axes", "TYX", "--out",
         d / "ours.csv", "--quiet", "--threads", th], th)
    res["ours"] = {**evaluate("classify", d / "ours.csv", d / "truth.csv", "", th), "info": info}
    info = script("ref_cnn.py", ["--image", ip, "--labels", op, "--classes", d / "train.csv", "--predict",
                                 d / "truth.csv", "--out", d / "plain.csv", *budget(T, STEPS, False), "--threads", th], th)
    res["plain CNN"] = {**evaluate("classify", d / "plain.csv", d / "truth.csv", "", th), "info": info}
    return res


STEPS: int | None = None  # set by --steps: equal optimizer steps instead of equal seconds

RUNNERS = {"instance": run_instance, "denoise": run_denoise, "semantic": run_semantic, "classify": run_classify}


# ---------------------------------------------------------------------------------------------- goals and table
def headline(e: Entry, res: dict) -> dict:
    """The entry's one-line verdict: metric, ours, the reference(s), goal, met."""
    def g(m, k):
        return res.get(m, {}).get(k)

    if e.task == "instance":
        ours, plain, classic = g("ours", "f1"), g("plain U-Net", "f1"), g("Otsu + watershed", "f1")
        met = ours >= 0.95 and ours >= plain + 0.02 if e.group == "2d" else ours >= 0.85
        return {"metric": "F1@0.5", "ours": ours, "plain": plain, "classical": classic, "met": bool(met),
                "ours_map": g("ours", "mean_ap"), "plain_map": g("plain U-Net", "mean_ap")}
    if e.task == "denoise":
        ours, plain, classic = g("ours", "psnr"), g("plain N2V", "psnr"), g("NL-means", "psnr")
        return {"metric": "PSNR dB", "ours": ours, "plain": plain, "classical": classic,
                "met": bool(ours >= classic + 1.0 and ours >= plain + 0.3)}
    if e.task == "semantic":
        ours, rf = g("ours", "mean_iou"), g("random forest", "mean_iou")
        return {"metric": "mIoU", "ours": ours, "plain": rf, "classical": None, "met": bool(ours >= rf)}
    ours, plain = g("ours", "accuracy"), g("plain CNN", "accuracy")
    return {"metric": "accuracy", "ours": ours, "plain": plain, "classical": None, "met": bool(ours >= 0.93)}


def _f(v, nd=3):
    return "-" if v is None else f"{v:.{nd}f}"


def table(results: list[dict]) -> str:
    lines = ["| entry | metric | ours | plain reference | classical | goal | met | ours: steps / train s |",
             "|---|---|---:|---:|---:|---|---|---|"]
    for r in results:
        h, nd = r["headline"], 2 if r["task"] == "denoise" else 3
        info = r["methods"].get("ours", {}).get("info", {})
        extra = f" (mAP {_f(h['ours_map'])} vs {_f(h['plain_map'])})" if "ours_map" in h else ""
        lines.append(f"| {r['entry']} | {h['metric']} | {_f(h['ours'], nd)}{extra} | {_f(h['plain'], nd)} | "
                     f"{_f(h['classical'], nd)} | {r['goal']} | {'yes' if h['met'] else '**no**'} | "
                     f"{info.get('steps')} / {info.get('train_s')} |")
    return "\n".join(lines)


def detail(results: list[dict]) -> str:
    lines = ["| entry | method | F1@0.5 | F1@0.7 | F1@0.9 | P@0.5 | R@0.5 | mean AP 0.5:0.9 | true/pred |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        if r["task"] != "instance":
            continue
        for m, rep in r["methods"].items():
            t = rep["thresholds"]
            lines.append(f"| {r['entry']} | {m} | {t['0.5']['f1']:.3f} | {t['0.7']['f1']:.3f} | {t['0.9']['f1']:.3f} | "
                         f"{t['0.5']['precision']:.3f} | {t['0.5']['recall']:.3f} | {rep['mean_ap']:.3f} | "
                         f"{rep['n_true']}/{rep['n_pred']} |")
    lines += ["", "| entry | method | PSNR | SSIM | mIoU | accuracy |", "|---|---|---:|---:|---:|---:|"]
    for r in results:
        if r["task"] == "instance":
            continue
        for m, rep in r["methods"].items():
            lines.append(f"| {r['entry']} | {m} | {_f(rep.get('psnr'), 2)} | {_f(rep.get('ssim'))} | "
                         f"{_f(rep.get('mean_iou'))} | {_f(rep.get('accuracy'))} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=120, help="seconds per training, ours and references")
    ap.add_argument("--quick", action="store_true", help="smoke run: 8 s per training")
    ap.add_argument("--steps", type=int, help="train ours and the references for this many optimizer steps "
                    "instead of --time-limit seconds (scribbles keep their time limit): comparisons that do "
                    "not depend on how busy the machine is")
    ap.add_argument("--only", nargs="+", metavar="ENTRY", help="entries (or name prefixes) to run")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for every method (default 2)")
    ap.add_argument("--tta", action="store_true", help="also score ours with predict --tta")
    ap.add_argument("--out", default="bench_output/quality")
    ap.add_argument("--list", action="store_true", help="list the entries and exit")
    args = ap.parse_args(argv)
    if args.list:
        for e in ENTRIES.values():
            print(f"{e.name:30s} {e.task:9s} {e.split}")
        return 0
    global STEPS
    T = 8.0 if args.quick else args.time_limit
    STEPS = args.steps
    names = [n for n in ENTRIES if not args.only or any(n == o or n.startswith(o) for o in args.only)]
    if not names:
        raise SystemExit(f"no entry matches {args.only}; see --list")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    t_all = time.perf_counter()
    for n in names:
        e = ENTRIES[n]
        d = out / n
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        t0, load0 = time.perf_counter(), os.getloadavg()[0]
        try:
            methods = RUNNERS[e.task](e, d, T, args.threads, args.tta)
        except Exception:  # one broken entry must not lose the others
            err = traceback.format_exc()
            print(f"{n}: FAILED\n{err}", file=sys.stderr, flush=True)
            results.append({"entry": n, "task": e.task, "error": err[-3000:]})
            continue
        r = {"entry": n, "task": e.task, "group": e.group, "goal": e.goal, "split": e.split, "source": e.source,
             "methods": methods, "seconds": round(time.perf_counter() - t0, 1),
             "loadavg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)]}
        r["headline"] = headline(e, methods)
        results.append(r)
        print(table([r]).splitlines()[-1], f"({r['seconds']} s, load {r['loadavg_1min']})", flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=2, default=float))
    ok = [r for r in results if "headline" in r]
    per = f"{STEPS} steps" if STEPS else f"{T:g} s"
    meta = (f"{len(ok)} entries, {per} per training, {args.threads} threads, Python {platform.python_version()}, "
            f"{platform.machine()}, {os.cpu_count()} CPUs; whole run {time.perf_counter() - t_all:.0f} s")
    text = "\n".join([table(ok), "", meta, "", detail(ok)])
    failed = [r["entry"] for r in results if "error" in r]
    if failed:
        text += "\n\nFAILED: " + ", ".join(failed)
    print("\n" + text)
    (out / "results.md").write_text(text + "\n")
    (out / "results.json").write_text(json.dumps({"meta": meta, "time_limit": T, "threads": args.threads,
                                                  "results": results}, indent=2, default=float))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
