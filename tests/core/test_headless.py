"""The engine imports no GUI code, so it runs headless (CLI, scripts, dask workers).

The import statements themselves are checked in ``tests/test_architecture.py``; this
checks what importing really loads.
"""

import subprocess
import sys

GUI = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "vispy", "superqt")


def test_importing_core_and_cli_loads_no_gui_module():
    code = (
        "import sys, napari_bioimg.core, napari_bioimg.cli.main, napari_bioimg.cli.train, napari_bioimg.cli.predict,"
        " napari_bioimg.core.formats.checkpoint;"
        f"bad=[m for m in sys.modules if m.split('.')[0] in {GUI!r}]; print(bad); assert not bad"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
