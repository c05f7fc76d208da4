#!/usr/bin/env bash
# Set everything up and run the main job on the built-in demo scene:
# generate it, build the Gaussians, learn the segmentation, evaluate, and
# take a studio screenshot. Outputs go to demo/ (override with COSEG_DEMO_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${COSEG_VENV:-.venv}
OUT=${COSEG_DEMO_DIR:-demo}
coseg() { "$VENV/bin/coseg" "$@"; }

[ -f "$OUT/scene/transforms_train.json" ] || coseg synth "$OUT/scene" --force
coseg info "$OUT/scene"
