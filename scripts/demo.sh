#!/usr/bin/env bash
# Set everything up and run the main job on the built-in demo scene:
# generate it, build the Gaussians (3DGS on the CPU), learn the segmentation
# field (CoSegGaussians), evaluate on the test views, and save a studio
# screenshot. Outputs go to demo/ (override with COSEG_DEMO_DIR). Re-running
# skips finished stages; an interrupted stage resumes from its checkpoint.
# A stage stopped with Ctrl-C exits with 130 and writes no result, so the
# script ends there and never goes on with a partial model (docs/data-safety.md).
# COSEG_DEMO_QUICK=1 runs a tiny version (small scene, 50 iterations per stage)
# in a few minutes, to check the tool chain; its numbers mean nothing.
# COSEG_DEMO_SETUP=0 skips scripts/setup.sh (an existing venv).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${COSEG_DEMO_SETUP:-1}" = 0 ] || bash scripts/setup.sh
VENV=${COSEG_VENV:-.venv}
OUT=${COSEG_DEMO_DIR:-demo}
coseg() { "$VENV/bin/coseg" "$@"; }
SYNTH=() BUILD=() SEGMENT=()
if [ "${COSEG_DEMO_QUICK:-0}" = 1 ]; then
  SYNTH=(--views 8 --test-views 2 --size 64x48) BUILD=(--iterations 50) SEGMENT=(--seg-iterations 50)
fi

[ -f "$OUT/scene/transforms_train.json" ] || coseg synth "$OUT/scene" --force "${SYNTH[@]}"
coseg info "$OUT/scene"

# A stage's result file exists only once the stage has completed; an
# unfinished one has a checkpoint to resume from.
if [ ! -f "$OUT/run/gaussians.ply" ]; then
  if compgen -G "$OUT/run/checkpoints/ckpt_*.pt" >/dev/null; then
    coseg build --resume "$OUT/run"
  else
    coseg build "$OUT/scene" --out "$OUT/run" --overwrite "${BUILD[@]}"  # nothing to lose: no result, no checkpoint
  fi
fi
if [ ! -f "$OUT/run/segmented.ply" ]; then
  if [ -f "$OUT/run/checkpoints/segment.pt" ]; then
    coseg segment "$OUT/run" --resume --no-eval
  else
    coseg segment "$OUT/run" --no-eval "${SEGMENT[@]}"
  fi
fi
coseg eval "$OUT/run"
coseg render "$OUT/run" --split test --what labels --out "$OUT/run/render/labels" --force

# A studio frame of the result (headless, under Xvfb when there is no display).
shot=("$VENV/bin/coseg-studio" "$OUT/run" --screenshot "$OUT/studio.png" --mode overlay --camera 0 --size 960x720)
if [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null; then
  xvfb-run -a -s "-screen 0 1920x1080x24" "${shot[@]}" || echo "studio screenshot failed (see above)"
else
  "${shot[@]}" || echo "studio screenshot failed (see above)"
fi
echo "demo done: scene $OUT/scene, run $OUT/run (metrics.json), screenshot $OUT/studio.png"
echo "open it in the studio: $VENV/bin/coseg-studio $OUT/run"
