#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: the system libraries Qt needs under a virtual
# display (Debian/Ubuntu), a virtual environment in .venv, torch, and this package with
# its test extras. Re-running it is cheap: it only acts on what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Debian packages: derived from what the PyQt6 wheels link and load (ldd + dpkg -S) by
# scripts/qt-system-libs.sh --write, which maintainers re-run when PyQt6 changes.
QT_DEBS="$(sed -e 's/#.*//' scripts/debian-packages.txt | awk 'NF {print $1}' | tr '\n' ' ' | sed 's/ $//')"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

if command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  # Installed packages and the names they provide (Ubuntu 24.04 renamed e.g. libglib2.0-0 to libglib2.0-0t64).
  have=" $(dpkg-query -W -f='${db:Status-Abbrev}|${Package}|${Provides}\n' 2>/dev/null |
    awk -F'|' '$1 ~ /^ii/ {print $2; n = split($3, a, /, */); for (i = 1; i <= n; i++) {split(a[i], b, " "); print b[1]}}' |
    tr '\n' ' ') "
  missing=""
  for p in $QT_DEBS; do [[ "$have" == *" $p "* ]] || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    echo "setup: installing system packages:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have no package index yet: update and try again when the first try fails.
    $SUDO apt-get install -y -q $missing >/dev/null 2>&1 ||
      { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q $missing >/dev/null; } ||
      { echo "setup: ERROR: could not install system packages:$missing" >&2
        echo "setup: fix: sudo apt-get update && sudo apt-get install -y$missing" >&2; exit 1; }
  fi
else
  echo "setup: not a Debian-like system; install Xvfb, xauth, Mesa's OpenGL (with its software renderer) and the" \
       "libraries Qt's xcb platform plugin links yourself (the Debian names: scripts/debian-packages.txt)" >&2
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=".venv/.napari-bioimg-setup"
want="$(cat pyproject.toml | sha1sum | cut -c1-40) ${TORCH_SPEC:-torch==2.13.0}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # torch first, pinned: an unpinned torch pulls the newest CUDA build (several GB).
  # On a GPU machine set TORCH_SPEC (e.g. "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128").
  if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    echo "setup: installing ${TORCH_SPEC:-torch==2.13.0}" >&2
    .venv/bin/pip install -q ${TORCH_SPEC:-torch==2.13.0} 2> >(grep -v "is ignored: it is neither" >&2)
  fi
  echo "setup: installing napari-bioimg and its test extras" >&2
  .venv/bin/pip install -q -e ".[testing]" 2> >(grep -v "is ignored: it is neither" >&2)
  echo "$want" > "$stamp"
fi

# Fail loudly, here, rather than with an ImportError deep in a test run or a demo without a screenshot:
# every library Qt's files link must resolve, the OpenGL libraries must load, and PyQt6 must import.
if ! gaps="$(bash scripts/qt-system-libs.sh --check .venv/bin/python)"; then
  echo "setup: ERROR: system libraries that Qt / OpenGL / Xvfb need are missing:" >&2
  echo "$gaps" | sed 's/^/setup:   /' >&2
  pkgs="$(echo "$gaps" | awk '{print $1}' | while read -r lib; do
      awk -v l="$lib" '!/^#/ {for (i = 2; i <= NF; i++) if ($i == l || $i ~ "/" l "$") print $1}' scripts/debian-packages.txt
    done | sort -u | tr '\n' ' ' | sed 's/ $//')"
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: fix: ${SUDO:+sudo }apt-get update && ${SUDO:+sudo }apt-get install -y ${pkgs:-$QT_DEBS}" >&2
  else
    echo "setup: fix: install your distribution's packages for the libraries above (Debian names: ${pkgs:-see scripts/debian-packages.txt})" >&2
  fi
  exit 1
fi
if ! err="$(QT_QPA_PLATFORM=offscreen .venv/bin/python -c "from PyQt6 import QtWidgets, QtOpenGLWidgets" 2>&1)"; then
  echo "setup: ERROR: PyQt6 does not import:" >&2
  echo "$err" | tail -3 | sed 's/^/setup:   /' >&2
  echo "setup: fix: rm -rf .venv && bash scripts/setup.sh   (and see scripts/debian-packages.txt for the system packages)" >&2
  exit 1
fi
