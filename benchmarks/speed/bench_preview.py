"""Time from starting training (pressing Train) to the first live preview on a 512x512 image.

A fresh process imports the engine (timed separately: napari has already imported
it when the user presses Train), then calls ``train()`` with the product's
defaults (instance U-Net, 120 s budget, previews on) on a real 512x512 nuclei
image, and stops at the first :class:`PreviewReady` event.
"""

from __future__ import annotations

import json
import sys
import time

from benchmarks.common import row, run_module


def child(device: str) -> dict:
    t = time.perf_counter()
    from napari_bioimg.core import TrainConfig
    from napari_bioimg.core import events as E
    from napari_bioimg.core.training.loop import train

    imports = time.perf_counter() - t
    from benchmarks.common import nuclei_2d

    img, lbl = nuclei_2d(512)
    t0 = time.perf_counter()
    first_step = None
    gen = train(img, lbl, TrainConfig(task="instance", device=device), preview_index=0)
    for ev in gen:
        if isinstance(ev, E.StepDone) and first_step is None:
            first_step = time.perf_counter() - t0
        if isinstance(ev, E.PreviewReady):
            preview = time.perf_counter() - t0
            shape = list(ev.data.shape)
            step = ev.step
            break
    gen.close()
    return {"first_preview_s": preview, "first_step_s": first_step, "import_s": imports, "preview_shape": shape,
            "preview_at_step": step}


def run(device: str = "cpu") -> list[dict]:
    res = run_module(__spec__.name, "child", device)
    if res.returncode != 0:
        raise SystemExit(f"preview child failed:\n{res.stderr[-3000:]}")
    m = json.loads(res.stdout.strip().splitlines()[-1])
    return [row("time_to_first_preview_512px", m["first_preview_s"], 10.0, unit="s", goal="<= 10 s on CPU",
                met=m["first_preview_s"] <= 10.0, reference_is="goal", device=device,
                first_step_s=round(m["first_step_s"], 2), engine_import_s=round(m["import_s"], 2),
                preview_at_step=m["preview_at_step"])]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        print(json.dumps(child(sys.argv[2])))
    else:
        for r in run(sys.argv[1] if len(sys.argv) > 1 else "cpu"):
            print(r)
