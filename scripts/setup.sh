#!/usr/bin/env bash
# One-time (idempotent) set-up: system packages, a venv in .venv, Python deps.
# CPU-only on machines without CUDA: torch is installed first, pinned to the
# local CPU build, so nothing later pulls a multi-GB CUDA wheel. If a torch is
# already importable in the venv (e.g. your own CUDA build) it is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${COSEG_VENV:-.venv}
PY=${PYTHON:-python3}

bash scripts/system-deps.sh

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  "${PIP[@]}" "torch==${COSEG_TORCH_VERSION:-2.13.0}"
fi
stamp="$VENV/.coseg-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "${PIP[@]}" -e ".[studio,test]"
  touch "$stamp"
fi
