"""Opening the dock from the Plugins menu: the engine loads in the background, the dock is built in pieces.

Run in a fresh process: in this one, earlier tests have imported the engine already.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent("""
    import json, sys, threading
    import napari
    from qtpy.QtCore import QEventLoop
    from napari_bioimg._qt import dock

    pieces, imported_by_gui, building = [], set(), [False]
    gui = threading.get_ident()

    def on_import(event, args):  # audit events are raised in the importing thread
        if event == "import" and building[0] and threading.get_ident() == gui and args[0] not in sys.modules:
            imported_by_gui.add(args[0])

    sys.addaudithook(on_import)
    build = dock.EngineDock._build

    def watched(self, *args, **kwargs):
        building[0] = True
        build(self, *args, **kwargs)
        building[0] = False
        pieces.append(bool(kwargs.get("stepwise", args[0] if args else False)))

    dock.EngineDock._build = watched
    viewer = napari.Viewer(show=True)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-bioimg", "Deep learning (train / predict)")
    loaded_at_open = dock._loaded.is_set()
    loop = QEventLoop()
    while not widget.__dict__.get("ready"):
        loop.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 10)
    heavy = sorted(m for m in imported_by_gui if m.split(".")[0] in ("torch", "scipy", "skimage", "sklearn",
                                                                       "matplotlib", "numba", "sympy"))
    engine = sorted(m for m in imported_by_gui if m.startswith("napari_bioimg.core."))
    print(json.dumps({"pieces": len(pieces), "stepwise": sum(pieces), "heavy": heavy, "engine": engine,
                      "loaded_at_open": loaded_at_open, "torch_loaded": "torch" in sys.modules}))
    viewer.close()
""")


@pytest.mark.skipif(not os.environ.get("DISPLAY") and sys.platform.startswith("linux"), reason="needs a display")
def test_the_gui_thread_imports_nothing_heavy_and_builds_in_pieces():
    """The GUI thread imports neither torch, scipy nor scikit-image (the background thread did; the tasks once
    pulled scipy in on the GUI thread, 1.2 s), and the dock appears a piece per turn of the event loop."""
    src = Path(__file__).resolve().parents[2] / "src"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert not seen["loaded_at_open"] and seen["torch_loaded"], seen
    assert seen["heavy"] == [] and seen["engine"] == [], seen
    assert seen["stepwise"] >= 10, seen  # the parts are shown one per turn


def test_every_part_the_build_makes_can_be_asked_for_before_it_is_built(viewer, qtbot):
    """A script may ask for any part right after opening the dock: each public attribute the build makes is one of
    the dock's PARTS (asking waits for the engine and finishes the build; an unlisted one raised AttributeError)."""
    from .conftest import open_widget

    widget = open_widget(viewer)
    widget.form  # noqa: B018 (finishes the build)
    made = {name for name in widget.__dict__ if not name.startswith("_")} - {"ready", "viewer"}
    assert made - set(widget.PARTS) == set()

