#!/usr/bin/env bash
# Set up (first run) and run every check: ruff (lint + format), mypy --strict, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh "[dev]"
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/mypy src
.venv/bin/python -m pytest "$@"
