"""*Export training command…*: the current settings and training data as a command line and a SLURM script.

The widget trains on one process; a run meant for several GPUs or a cluster moves to the
command line (``napari-bioimg train --nproc N``, or ``torchrun`` under SLURM). This button
writes, next to the file the user names (``train.sh``):

* ``train_data/``: the Training data list (or the picked image and its annotations) as a
  ``pairs.csv`` table; layers are written as TIFFs (annotations always: they may be painted),
  images opened from a file are listed by their path, files of a folder as they are;
* ``train.sh``: the exact ``napari-bioimg train`` command of the form's settings;
* ``train.slurm``: the same training as a SLURM job, one ``torchrun`` per node.

Main thread only (the files are small: what the user annotated in the viewer).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from magicgui.widgets import PushButton
from qtpy.QtWidgets import QFileDialog

from . import layers as L

#: What the SLURM script asks for by default (the user edits it for their cluster).
SLURM_NODES, SLURM_GPUS = 1, 4
DATA_FOLDER = "train_data"


class CommandExport:
    """The button (in the Training data section) and what it writes."""

    def __init__(self, form, data, status, parent=None):
        self.form, self.data, self.status, self.parent = form, data, status, parent
        self.btn = PushButton(text="Export training command…",
                              tooltip="Write the command line (and a SLURM script) that trains with these settings "
                                      "and this training data, e.g. on several GPUs or a cluster")
        self.btn.changed.connect(self._dialog)
        data.rows[-1].append(self.btn)

    def _dialog(self, value=None) -> None:
        path, _ = QFileDialog.getSaveFileName(self.parent, "Export training command", "train.sh", "Shell script (*.sh)")
        if path:
            self.export(path)

    def export(self, path: str | Path) -> Path | None:
        """Write the data table, ``train.sh`` and ``train.slurm`` next to ``path``; say so (or what is missing)."""
        from ..core.data.io import atomic_path
        from ..core.errors import BioimgError

        path = Path(path).with_suffix(".sh")
        try:
            config = self.form.config()
            table = self.write_data(path.parent / DATA_FOLDER, self.form.task_info)
        except BioimgError as err:
            self.status.error(str(err))
            return None
        flags = train_flags(config)
        model = path.with_name(path.stem + "_model.pt").name
        data = f"{DATA_FOLDER}/{table.name}"
        local = ["napari-bioimg", "train", "--data", data, "--out", model, *flags, "--device", config.device]
        slurm = path.with_suffix(".slurm")
        scripts = {path: shell_script(local), slurm: slurm_script(data, model, flags, slurm.name)}
        for target, text in scripts.items():
            with atomic_path(target) as tmp:
                tmp.write_text(text)
            target.chmod(0o755)
        self.status.info(f"Wrote {path.name}, {path.with_suffix('.slurm').name} and {DATA_FOLDER}/ in {path.parent}",
                         notify=True)
        return path

    def write_data(self, folder: Path, task) -> Path:
        """The training data as ``folder/pairs.csv`` (layers written as TIFFs into ``folder``)."""
        from ..core.data.io import write_table
        from ..core.errors import InputError

        if {"classes", "target"} & set(task.inputs):
            raise InputError(f"Export training command writes tasks trained on images and their annotations; for "
                             f"{task.name!r} give --classes / --target on the command line (see the README)")
        rows = [(p.image, p.labels, p.split) for p in self.data.pairs]
        if not rows:
            image, labels = self.form.image.value, self.form.annotations.value
            if image is None or (labels is None and task.needs_annotations):
                raise InputError("nothing to export: pick an image and its annotations, or add pairs to the "
                                 "Training data list")
            rows = [(L.layer_key(image), None if labels is None else L.layer_key(labels), "auto")]
        folder.mkdir(parents=True, exist_ok=True)
        columns: dict[str, list] = {"image": [], "labels": [], "split": []}
        for image, labels, split in rows:
            columns["image"].append(self._file(image, folder, keep_source=True))
            columns["labels"].append("" if labels is None else self._file(labels, folder, keep_source=False))
            columns["split"].append("val" if split == "val" else "")
        return write_table(folder / "pairs.csv", columns)

    def _file(self, ref, folder: Path, *, keep_source: bool) -> str:
        """A row's image or annotations as a path in the table (relative to it when written here)."""
        from ..core.data.io import write_image

        if isinstance(ref, Path):
            return str(ref.resolve())
        layer = L.find_layer(self.data.viewer, ref)
        source = getattr(getattr(layer, "source", None), "path", None)
        if keep_source and source and Path(source).is_file():
            return str(Path(source).resolve())
        name = "".join(c if c.isalnum() or c in "-_" else "_" for c in layer.name) + ".tif"
        write_image(folder / name, L.snapshot(layer))
        return name


def train_flags(config) -> list[str]:
    """The ``train`` flags that give ``config`` (every setting the command line has a flag for; not the device)."""
    from ..cli.parser import FLAGS, MODEL_FLAGS, build_parser

    build_parser()  # FLAGS is filled in as the flags are declared (cli.flags.add_setting)
    flags = ["--task", config.task]
    for field, flag in FLAGS.items():
        value = getattr(config, field, None)
        if value is None or field in ("device", "num_threads") or flag in ("--tile", "--overlap", "--block", "--out"):
            continue
        if field == "time_limit" and config.epochs:
            continue
        flags += [flag, *(str(v) for v in (value if isinstance(value, (tuple, list)) else [value]))]
    if config.grad_clip is None:
        flags += ["--grad-clip", "0"]
    if not config.augment:
        flags.append("--no-augment")
    for key in MODEL_FLAGS:
        if config.model_config.get(key) is not None:
            flags += [f"--{key.replace('_', '-')}", str(config.model_config[key])]
    return flags


def shell_script(command: list[str]) -> str:
    return ("#!/bin/bash\n# Written by napari-bioimg (Export training command…): the widget's settings and training "
            "data.\n# Several GPUs of this machine: add --nproc N --device cuda (--batch-size is per process).\n"
            'cd "$(dirname "$0")"\n' + _wrap(command) + "\n")


def slurm_script(data: str, model: str, flags: list[str], name: str) -> str:
    train = ["-m", "napari_bioimg.cli", "train", "--data", data, "--out", model, *flags, "--device", "cuda"]
    return f"""#!/bin/bash
# Written by napari-bioimg (Export training command…). Submit from this folder: sbatch {name}
# One torchrun per node starts one training process per GPU; --batch-size is the batch of each process.
#SBATCH --job-name=napari-bioimg-train
#SBATCH --nodes={SLURM_NODES}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={SLURM_GPUS}
#SBATCH --cpus-per-task=32
#SBATCH --time=04:00:00
cd "${{SLURM_SUBMIT_DIR:-.}}"
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
srun torchrun --nnodes "$SLURM_NNODES" --nproc-per-node {SLURM_GPUS} --rdzv-id "$SLURM_JOB_ID" \\
    --rdzv-backend c10d --rdzv-endpoint "$head:29500" \\
{_wrap(train, indent="    ")}
"""


def _wrap(words: list[str], indent: str = "") -> str:
    """A command as shell-quoted lines of at most ~100 characters (a flag kept with its values), joined with
    backslashes."""
    groups: list[str] = []
    for word in map(shlex.quote, words):
        if groups and not word.startswith("-"):
            groups[-1] += " " + word
        else:
            groups.append(word)
    lines, line = [], indent
    for group in groups:
        if len(line) + len(group) > 100 and line.strip():
            lines.append(line.rstrip() + " \\")
            line = indent + "    "
        line += group + " "
    return "\n".join([*lines, line.rstrip()])
