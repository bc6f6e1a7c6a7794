"""The benchmark registry: names resolve lazily to runnable entry points."""

from __future__ import annotations

import pytest

from speakstream.bench import BENCHMARKS, DEFAULT_BENCHMARK, load_benchmark, load_table
from speakstream.bench.common import percentiles


def test_every_registered_benchmark_loads() -> None:
    assert DEFAULT_BENCHMARK in BENCHMARKS
    for name in BENCHMARKS:
        assert callable(load_benchmark(name))


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="latency"):
        load_benchmark("nope")


def test_the_latency_benchmark_prints_the_readme_table() -> None:
    import json
    from pathlib import Path

    table = load_table("latency")
    assert table is not None
    results = json.loads((Path(__file__).parent.parent / "bench/results/latency.json").read_text())
    assert table(results).count("\n| ") == 9  # header + 8 rows


def test_percentiles_interpolate() -> None:
    assert percentiles([1.0, 2.0, 3.0, 4.0, 5.0]) == {
        "p50": 3.0,
        "p95": 4.8,
        "p99": 4.96,
        "mean": 3.0,
        "n": 5,
    }
    assert percentiles([]) == {}


def test_the_load_benchmark_listener_counts_underruns() -> None:
    from speakstream.bench.playback import Playback

    # starts 100 ms after the first chunk; 500 ms chunks
    assert Playback([(0.0, 500.0), (0.55, 500.0)], 100.0).gaps == []
    # the second chunk comes 0.2 s after the playhead ran out at 0.6 s
    [gap] = Playback([(0.0, 500.0), (0.8, 500.0), (1.2, 100.0)], 100.0).gaps
    assert gap == pytest.approx(200.0)
    assert Playback([], 100.0).gaps == []


async def test_a_benchmark_server_that_exits_at_once_is_reported_as_not_started() -> None:
    # it used to signal the dead process and raise ProcessLookupError instead
    from speakstream.bench.common import server_with_pid

    with pytest.raises(RuntimeError, match="did not start"):
        async with server_with_pid("--port-that-does-not-exist"):
            pass


def test_the_load_benchmark_prints_the_readme_tables_of_the_committed_results() -> None:
    import json
    from pathlib import Path

    table = load_table("load")
    assert table is not None
    results = json.loads((Path(__file__).parent.parent / "bench/results/load.json").read_text())
    rows = results["targets"]["speakstream"]["rows"] if "targets" in results else results["rows"]
    text = table(results)
    assert text.count("\n| speakstream | ") == len(rows) + 1  # each N, then listeners served
