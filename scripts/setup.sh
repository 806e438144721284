#!/usr/bin/env bash
# Create the virtual environment (default .venv) and install seglab with its test extras.
# torch and torchvision are pinned to the pair seglab is tested with; install them first so the
# package's looser ranges do not pull a different multi-GB build.
set -euo pipefail
VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
echo "[setup] installing torch 2.14.1 + torchvision 0.29.1 (about 90 s and 5.6 GB on a fresh machine)"
$PIP install "torch==2.14.1" "torchvision==0.29.1"
echo "[setup] installing seglab and its test tools"
$PIP install -e ".[test]"
touch "$VENV/.installed"
echo "[setup] done: $VENV"
