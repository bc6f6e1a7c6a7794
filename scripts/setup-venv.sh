#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs speakstream into it with the given extras.
# Sourced by serve.sh and test.sh; safe to run again (pip skips what is already there).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "speakstream needs Python 3.11 or newer")'
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${1:-}"
