"""scripts/setup-venv.sh run twice at once (serve.sh and test.sh in two shells) must not
race on .venv, and builds the venv named by VENV (test.sh's .venv-chatterbox) with its
own lock. The script runs on a copy of itself with PYTHON pointing to a stand-in
interpreter that records when each venv creation and pip install starts and ends.
scripts/test.sh runs every test file that uses the ``chatterbox`` marker in that venv."""

from __future__ import annotations

import re
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


def copied_setup(tmp_path: Path) -> tuple[str, dict[str, str], Path]:
    """The script's copy, its environment (the stand-in python) and the step log."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup-venv.sh", tmp_path / "scripts" / "setup-venv.sh")
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    log = tmp_path / "steps.log"
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(fake), "FAKE_LOG": str(log)}
    return str(tmp_path / "scripts" / "setup-venv.sh"), env, log


@pytest.mark.skipif(shutil.which("flock") is None, reason="no flock on this system")
def test_two_setups_at_once_take_turns(tmp_path: Path) -> None:
    script, env, log = copied_setup(tmp_path)
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


def test_venv_names_the_directory_it_builds(tmp_path: Path) -> None:
    script, env, log = copied_setup(tmp_path)
    done = subprocess.run(
        ["bash", script, "[dev]"],
        env={**env, "VENV": ".venv-other"},
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / ".venv-other" / "bin" / "python").is_file()
    assert not (tmp_path / ".venv").exists()
    steps = log.read_text().splitlines()
    assert "start -m venv .venv-other" in steps
    if shutil.which("flock") is not None:
        assert (tmp_path / ".venv-other.lock").is_file()


def test_test_sh_runs_every_chatterbox_test_file() -> None:
    """A file marked ``chatterbox`` that test.sh does not list would never run: the main
    run deselects the marker, and the chatterbox run collects only the listed files."""
    listed = re.search(r"CHATTERBOX_TESTS=\(([^)]*)\)", (ROOT / "scripts" / "test.sh").read_text())
    assert listed is not None
    marked = {
        f"tests/{path.name}"
        for path in (ROOT / "tests").glob("test_*.py")
        if path.name != Path(__file__).name and "mark.chatterbox" in path.read_text()
    }
    assert "tests/test_engine_chatterbox.py" in marked
    assert set(listed.group(1).split()) == marked
