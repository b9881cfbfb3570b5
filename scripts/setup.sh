#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: the system libraries Qt needs under a virtual
# display (Debian/Ubuntu), a virtual environment in .venv, torch, and this package with
# its test extras. Re-running it is cheap: it only acts on what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

QT_DEBS="xvfb xauth libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
libxcb-xinerama0 libxcb-xinput0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libxkbcommon-x11-0 libegl1
libdbus-1-3 libgl1 libglx-mesa0 libfontconfig1"

if command -v dpkg >/dev/null 2>&1; then
  missing=""
  for p in $QT_DEBS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "setup: installing system packages:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q $missing >/dev/null || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q $missing >/dev/null; }
  fi
else
  echo "setup: not a Debian-like system; install Xvfb and Qt's xcb libraries yourself" >&2
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
