#!/usr/bin/env bash
# Main job on the bundled sample data: set up, train the default U-Net (120 s), predict
# held-out slices, score them, and save model, prediction, metrics and a screenshot of
# the napari window to demo_output/. Works without a display (uses Xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -n "${DISPLAY:-}" ]; then
  exec .venv/bin/napari-bioimg demo "$@"
fi
exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/napari-bioimg demo "$@"
