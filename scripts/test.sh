#!/usr/bin/env bash
# Run the test suite in the virtual environment (default .venv). pytest's exit code 5 ("no tests
# collected") is an error here: a suite that runs nothing must not pass.
set -uo pipefail
VENV="${VENV:-.venv}"
"$VENV/bin/python" -m pytest -q "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
