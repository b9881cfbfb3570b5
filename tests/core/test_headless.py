"""The engine imports no GUI code, so it runs headless (CLI, scripts, dask workers)."""

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "src" / "napari_bioimg" / "core"
GUI = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "vispy", "superqt")


def test_no_gui_import_statements_in_core():
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in GUI]
    assert not offenders, offenders


def test_importing_core_and_cli_loads_no_gui_module():
    code = (
        "import sys, napari_bioimg.core, napari_bioimg.cli.main, napari_bioimg.core.formats.checkpoint;"
        f"bad=[m for m in sys.modules if m.split('.')[0] in {GUI!r}]; print(bad); assert not bad"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
