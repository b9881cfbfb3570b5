#!/usr/bin/env bash
# The whole test suite: set up, then pytest under a virtual display (real napari windows).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=xcb PYTHONFAULTHANDLER=1 OMP_WAIT_POLICY=PASSIVE
exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
