#!/usr/bin/env bash
# Set everything up (system packages, .venv, Python deps) and run the test suite.
# GUI tests run under Xvfb (Mesa llvmpipe OpenGL). Extra arguments go to pytest.
#   bash scripts/test.sh            # the suite (long checks marked `slow` excluded)
#   bash scripts/test.sh --slow     # only the long checks
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${COSEG_VENV:-.venv}
marker="not slow"
if [ "${1:-}" = "--slow" ]; then marker="slow"; shift; fi
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-xcb}
run=("$VENV/bin/python" -m pytest -m "$marker" "$@")
set +e
if command -v xvfb-run >/dev/null && [ -z "${DISPLAY:-}" ]; then
  xvfb-run -a -s "-screen 0 1920x1080x24" "${run[@]}"
else
  "${run[@]}"
fi
rc=$?
set -e
# pytest exits 5 when a marker selects no test: not a failure of the suite.
[ "$rc" = 5 ] && { echo "no tests selected by -m '$marker'"; rc=0; }
exit "$rc"
