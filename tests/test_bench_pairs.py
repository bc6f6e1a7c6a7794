"""The paired benchmark: its verdict per pair, and its quickest run against real servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from speakstream.bench import pairs

pytestmark = pytest.mark.timeout(300)


def _pair(a: float | None, b: float | None) -> dict[str, dict[str, Any]]:
    return {"A": {"underrun_ms_total": a}, "B": {"underrun_ms_total": b}}


def test_the_verdict_counts_the_pairs_each_variant_won() -> None:
    runs = [_pair(100.0, 0.0), _pair(50.0, 80.0), _pair(0.0, 0.0), _pair(900.0, 300.0)]
    assert pairs.verdict(runs, "underrun_ms_total") == {
        "a_less": 1,
        "b_less": 2,
        "ties": 1,
        "median_b_minus_a": -50.0,  # of -100, 30, 0, -600
    }
    # a pair where either side has no value (a server that reports none) is left out
    assert pairs.verdict([_pair(None, 5.0)], "underrun_ms_total")["median_b_minus_a"] is None


def _row(underrun_streams: int, ttfa_p95_ms: float, refused: int = 0) -> dict[str, Any]:
    return {
        "streams_with_underruns": underrun_streams,
        "streams_refused": refused,
        "streams_without_audio": 0,
        "ttfa_ms": {"p95": ttfa_p95_ms},
    }


def test_a_run_serves_its_listeners_only_without_underrun_refusal_or_late_first_audio() -> None:
    runs = [
        {"A": _row(0, 250.0), "B": _row(0, 250.0)},
        {"A": _row(0, 301.0), "B": _row(1, 100.0)},  # A late, B stalled
        {"A": _row(0, 300.0), "B": _row(0, 100.0, refused=1)},  # B refused one
    ]
    assert pairs.served_runs(runs) == {"A": 2, "B": 1}


def test_a_quick_run_pairs_the_two_modes_on_fresh_servers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "pairs.json"
    assert pairs.run(quick=True, output=output) == 0
    results = json.loads(output.read_text())
    assert results["flags"] == {
        "A": ["--admission-fraction", "0"],
        "B": ["--no-bidirectional-streaming-enabled", "--admission-fraction", "0"],
    }
    [pair] = results["pairs"]
    for variant in ("A", "B"):
        row = pair[variant]
        assert row["listeners"] == 2 and row["errors"] == [], variant
        assert row["ttfa_ms"]["n"] == 2  # both listeners heard audio
        assert row["server_segments_total"] >= 2  # from each context's done
        assert row["server_stall_ms_total"] is not None
        assert row["ttfa_p95_ms"] == row["ttfa_ms"]["p95"] > 0
    for measure in pairs.MEASURES:
        v = results["verdicts"][measure]
        assert v["a_less"] + v["b_less"] + v["ties"] == 1
    assert set(results["served_runs"]) == {"A", "B"}
    out = capsys.readouterr().out
    assert "underrun_ms_total: less with A in" in out
    assert "all 2 listeners served" in out
