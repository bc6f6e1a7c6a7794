"""scripts/setup-venv.sh run twice at once (serve.sh and test.sh in two shells) must not
race on .venv. The script runs on a copy of itself with PYTHON pointing to a stand-in
interpreter that records when each venv creation and pip install starts and ends."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Stands in for python3 (and, once "created", for .venv/bin/python): every step it is
# asked for takes a while and is logged, so overlapping steps show in the log.
FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1" = "-c" ]; then exit 0; fi
echo "start $*" >> "$FAKE_LOG"
sleep 0.5
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
fi
echo "end $*" >> "$FAKE_LOG"
"""


@pytest.mark.skipif(shutil.which("flock") is None, reason="no flock on this system")
def test_two_setups_at_once_take_turns(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup-venv.sh", tmp_path / "scripts" / "setup-venv.sh")
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / "steps.log"
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(fake), "FAKE_LOG": str(log)}
    script = str(tmp_path / "scripts" / "setup-venv.sh")
    runs = [
        subprocess.Popen(["bash", script, *extra], env=env, stderr=subprocess.PIPE)
        for extra in ([], ["[dev]"])
    ]
    for run in runs:
        _, err = run.communicate(timeout=60)
        assert run.returncode == 0, err.decode()
    steps = log.read_text().splitlines()
    depth = 0
    for step in steps:  # never two steps at once
        depth += 1 if step.startswith("start") else -1
        assert depth in (0, 1), steps
    assert sum(s.startswith("start -m venv") for s in steps) == 1  # then reused
    assert sum(s.startswith("start -m pip install --quiet --disable") for s in steps) == 2
