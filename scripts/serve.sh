#!/usr/bin/env bash
# Set up (first run) and start the server with the bundled Piper voice on 127.0.0.1:8000.
# Extra arguments go to `speakstream serve` (e.g. --port 9000, --config speakstream.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-venv.sh
exec .venv/bin/python -m speakstream serve "$@"
