"""Two ways of serving the same listeners, in alternating pairs (``speakstream bench pairs``).

This shared machine's speed drifts by tens of percent within minutes (the load
benchmark's engine limit moved from 14.7 to 20.6 audio seconds per second in seven), more
than most differences between two server settings, so two settings measured minutes
apart say little. Here each of two variants (server flags; by default the concurrent
mode against the seed's sequential one) serves N LLM-paced listeners arriving over a
window (the load benchmark's clients and measures) on a fresh server of its own, the
variants alternate (A B, B A, A B…), and the verdict is per pair: how many pairs each
variant won on underrun time (the listeners', 100 ms jitter buffer), on the server's own
stall time and on first audio p95, and the median difference; and per variant, in how
many of its runs every listener was served (the load benchmark's goal: p95 first audio
<= 300 ms, no underrun). Admission control is off in both, so each serves every
listener. Run it once with both variants the same (A/A) to see what chance alone gives
here, and how often N listeners are served on this machine.

Environment: ``PAIRS_BENCH_LISTENERS`` (N, default 14), ``PAIRS_BENCH_ROUNDS`` (pairs,
default 6), ``PAIRS_BENCH_ARRIVAL_S`` (default 2), ``PAIRS_BENCH_A`` and
``PAIRS_BENCH_B`` (each variant's extra server flags, shell-quoted).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import statistics
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

from speakstream.bench.common import server_with_pid, write_results
from speakstream.bench.listeners import Heard
from speakstream.bench.load import (
    PARAGRAPH,
    QUICK_TEXT,
    TOKENS_PER_S,
    at_load,
    listen,
    meets_goal,
)

DEFAULT_FLAGS = {"A": "", "B": "--no-bidirectional-streaming-enabled"}
ADMISSION_OFF = ("--admission-fraction", "0")
# what each pair is judged on (less is better), from the load benchmark's rows
MEASURES = ("underrun_ms_total", "server_stall_ms_total", "ttfa_p95_ms")


def verdict(pairs: Sequence[dict[str, dict[str, Any]]], measure: str) -> dict[str, Any]:
    """Over ``pairs`` (each ``{"A": row, "B": row}``): the pairs where A had less of
    ``measure``, where B had, the ties, and the median of B's value minus A's."""
    known = [p for p in pairs if p["A"][measure] is not None and p["B"][measure] is not None]
    differences = [float(p["B"][measure]) - float(p["A"][measure]) for p in known]
    return {
        "a_less": sum(1 for d in differences if d > 0),
        "b_less": sum(1 for d in differences if d < 0),
        "ties": sum(1 for d in differences if d == 0),
        "median_b_minus_a": round(statistics.median(differences), 1) if differences else None,
    }


def served_runs(pairs: Sequence[dict[str, dict[str, Any]]]) -> dict[str, int]:
    """Per variant: in how many of its runs every listener was served (the load
    benchmark's goal)."""
    return {v: sum(1 for p in pairs if meets_goal(p[v])) for v in ("A", "B")}


async def pairs_async(
    flags: dict[str, tuple[str, ...]], count: int, rounds: int, arrival_s: float, text: str
) -> list[dict[str, dict[str, Any]]]:
    """``rounds`` pairs of runs, the order alternating; each run on a fresh server."""
    pairs: list[dict[str, dict[str, Any]]] = []
    for round_index in range(rounds):
        order = ("A", "B") if round_index % 2 == 0 else ("B", "A")
        pair: dict[str, dict[str, Any]] = {}
        for variant in order:
            async with server_with_pid(*flags[variant], *ADMISSION_OFF) as (url, pid):

                def client(index: int, url: str = url) -> Awaitable[Heard]:
                    return listen("speakstream", url, index, text)

                row = await at_load(client, pid, count, arrival_s)
            row["ttfa_p95_ms"] = row["ttfa_ms"].get("p95")
            pair[variant] = row
            print(
                f"pair {round_index + 1} {variant}: underrun streams "
                f"{row['streams_with_underruns']} ({row['underrun_ms_total']} ms), server "
                f"stall {row['server_stall_ms_total']} ms, segments "
                f"{row['server_segments_total']}, ttfa p95 {row['ttfa_p95_ms']} ms",
                flush=True,
            )
        pairs.append(pair)
    return pairs


def run(*, quick: bool = False, output: Path | None = None) -> int:
    count = 2 if quick else int(os.environ.get("PAIRS_BENCH_LISTENERS", "14"))
    rounds = 1 if quick else int(os.environ.get("PAIRS_BENCH_ROUNDS", "6"))
    arrival_s = float(os.environ.get("PAIRS_BENCH_ARRIVAL_S", "2"))
    flags = {
        v: tuple(shlex.split(os.environ.get(f"PAIRS_BENCH_{v}", DEFAULT_FLAGS[v])))
        for v in ("A", "B")
    }
    text = QUICK_TEXT if quick else PARAGRAPH
    load_avg_at_start = os.getloadavg()
    print(
        f"pairs: {rounds} pairs of {count} listeners (word tokens at {TOKENS_PER_S:g}/s) "
        f"arriving over {arrival_s:g} s; A: {' '.join(flags['A']) or 'defaults'}; "
        f"B: {' '.join(flags['B']) or 'defaults'}; admission off; load average "
        f"{load_avg_at_start[0]:.2f}"
    )
    pairs = asyncio.run(pairs_async(flags, count, rounds, arrival_s, text))
    verdicts = {measure: verdict(pairs, measure) for measure in MEASURES}
    for measure, v in verdicts.items():
        print(
            f"{measure}: less with A in {v['a_less']} pairs, with B in {v['b_less']}, "
            f"ties {v['ties']}; median B - A {v['median_b_minus_a']} ms"
        )
    served = served_runs(pairs)
    print(
        f"all {count} listeners served (p95 first audio <= 300 ms, no underrun): "
        f"A in {served['A']} of {rounds} runs, B in {served['B']} of {rounds}"
    )
    results = {
        "benchmark": "pairs",
        "quick": quick,
        "listeners": count,
        "rounds": rounds,
        "arrival_window_s": arrival_s,
        "text_chars": len(text),
        "tokens_per_s": TOKENS_PER_S,
        "flags": {v: list(f) + list(ADMISSION_OFF) for v, f in flags.items()},
        "load_avg_at_start": load_avg_at_start,
        "pairs": pairs,
        "verdicts": verdicts,
        "served_runs": served,
    }
    write_results(results, output, "bench/results/pairs.json")
    return 0
