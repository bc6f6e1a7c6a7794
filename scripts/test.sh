#!/usr/bin/env bash
# Set up (first run) and run every check: ruff (lint + format), mypy --strict, pytest
# (including the browser tests, with Debian's chromium installed by apt-get when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh "[dev]"
# Browser tests drive Debian's Chromium (never a downloaded browser); install it if missing.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null \
    || echo "warning: could not install chromium; the browser tests will be skipped" >&2
fi
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/mypy src
.venv/bin/python -m pytest "$@"
