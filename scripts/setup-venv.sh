#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs speakstream into it with the given extras.
# Run by serve.sh and test.sh; safe to run again (pip skips what is already there) and
# safe to run twice at once (serve.sh and test.sh in two shells): one waits for the other
# on a lock (.venv.lock, with flock where util-linux has it).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "speakstream needs Python 3.11 or newer")'
if command -v flock >/dev/null 2>&1; then
  exec 9>.venv.lock
  flock 9
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${1:-}"
