#!/usr/bin/env bash
# Speed and scale benchmarks, side by side: set up (as the test command does), add the
# benchmark-only packages (MONAI for the reference tiler, matplotlib for the plot), run
# every benchmark and print one JSON row per result. Arguments go to benchmarks/speed/run_all.py
# (--quick, --device cuda, --only train,predict,...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! .venv/bin/python -c "import monai, matplotlib" 2>/dev/null; then
  .venv/bin/pip install -q -e ".[testing,benchmarks]" 2> >(grep -v "is ignored: it is neither" >&2)
fi
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# the GUI benchmark starts its own virtual display (xvfb-run) when there is none
exec .venv/bin/python -m benchmarks.speed.run_all "$@"
