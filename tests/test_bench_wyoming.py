"""The Wyoming benchmark, in its quickest run: our listener against wyoming-piper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speakstream.bench import wyoming
from speakstream.bench.peers import missing

pytestmark = pytest.mark.timeout(300)


def test_a_quick_run_times_both_servers_in_both_modes(tmp_path: Path) -> None:
    reason = missing("wyoming-piper")
    if reason is not None:
        pytest.skip(reason)
    output = tmp_path / "wyoming.json"
    assert wyoming.run(quick=True, output=output, rounds=1, clients=(1, 2)) == 0
    results = json.loads(output.read_text())
    assert [(r["mode"], r["clients"]) for r in results["rows"]] == [
        ("synthesize", 1),
        ("synthesize", 2),
        ("stream", 1),
        ("stream", 2),
    ]
    for row in results["rows"]:
        assert row["wyoming_piper_errors"] == []
        assert row["wyoming_piper_ttfa_ms"]["n"] == row["clients"]
        # ours answers every client, or refuses one as busy (admission control)
        heard = row["speakstream_ttfa_ms"].get("n", 0)
        assert heard + len(row["speakstream_errors"]) == row["clients"]
        assert set(row["speakstream_errors"]) <= {"busy"}
        assert heard >= 1
        assert row["p50_wyoming_piper_over_speakstream"] > 0
    assert wyoming.markdown_table(results).count("\n| ") == 4  # a line per row
