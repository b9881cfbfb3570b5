"""Load torch's native libraries without holding the GIL, before ``import torch``.

``import torch`` opens libtorch (hundreds of megabytes; its static initialisers register
thousands of operators). Python's import machinery holds the GIL through that ``dlopen``:
0.2–0.6 s on 2 cores during which no other Python thread runs, so a viewer importing the
engine in a background thread still froze for as long. A call through :mod:`ctypes`
releases the GIL, so :func:`preload_torch` opens the same files the same way torch's own
``__init__`` and Python's import would (the global-deps library with ``RTLD_GLOBAL``, then
the ``torch._C`` extension with the interpreter's dlopen flags). The import that follows
finds them loaded and only runs the Python side. Linux only; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from pathlib import Path


def torch_libraries() -> list[tuple[Path, int]]:
    """The files ``import torch`` opens first, each with its dlopen mode; empty where torch is absent or loaded."""
    if not sys.platform.startswith("linux") or "torch" in sys.modules:
        return []
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return []
    root = Path(spec.origin).parent
    files = []
    deps = root / "lib" / "libtorch_global_deps.so"
    if deps.is_file():  # as torch/__init__.py does (ctypes adds RTLD_NOW)
        files.append((deps, os.RTLD_GLOBAL | os.RTLD_NOW))
    files += [(ext, sys.getdlopenflags()) for ext in sorted(root.glob("_C.*.so"))]
    return files


def preload_torch() -> int:
    """Open torch's native libraries with the GIL released; return how many were opened.

    Meant for a background thread. Harmless if it fails: ``import torch`` then does the work itself.
    """
    try:
        dlopen = ctypes.CDLL(None).dlopen
    except (OSError, AttributeError):
        return 0
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    opened = 0
    for path, mode in torch_libraries():
        if not dlopen(os.fsencode(path), mode):
            break  # the import will report whatever is wrong
        opened += 1
    return opened
