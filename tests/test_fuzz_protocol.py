"""Coverage-guided fuzzing of the parser and session for a bounded time (issue 14).

libFuzzer (through atheris) mutates inputs toward new code paths, from a small corpus of
real messages; the run must end without a crash.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

FUZZER = Path(__file__).resolve().parent / "fuzz" / "fuzz_protocol.py"
SEEDS = [
    {"type": "start", "context": "a", "voice": "v", "speed": 1.5, "cuts": "eager"},
    {"type": "text", "context": "a", "text": "Hello there, how are you? "},
    {"type": "flush", "context": "a"},
    {"type": "cancel", "context": "a", "played_ms": 120},
    {"type": "end"},
    {"type": "ping", "id": 7},
]


@pytest.mark.timeout(180)
def test_parser_and_session_survive_coverage_guided_fuzzing(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed{i}").write_text(json.dumps(seed))
    (corpus / "several").write_text("\n".join(json.dumps(s) for s in SEEDS))
    # A clean environment: nothing the rest of the test run set may reach the fuzzer.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    result = subprocess.run(
        [sys.executable, str(FUZZER), "-max_total_time=30", "-rss_limit_mb=2048", str(corpus)],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr
