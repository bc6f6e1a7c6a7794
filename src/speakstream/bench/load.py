"""Load: how many real-time listeners one server serves without stalls.

``speakstream bench load`` starts a server process and, for each N, runs N clients at
once, each streaming a ~600-character paragraph as word tokens at 30 tokens/s (an LLM)
and playing the audio as a listener would: from its first byte plus a 100 ms jitter
buffer, in real time; an underrun is every moment the playback passes the audio
received. Per N: time to first audio (first text sent to first audio byte) p50/p95/p99,
streams with an underrun, total underrun ms, audio seconds delivered per second of wall
time, the server's CPU and RSS. It finds the largest N with p95 first audio <= 300 ms and
no underrun, and reports it against the engine's own limit measured in the same run:
Piper in the benchmark process with every core busy, in audio seconds per second (how
many real-time listeners the engine could feed if nothing else cost anything). Results
go to ``bench/results/load.json``, with a PNG plot when matplotlib is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from speakstream.bench.common import percentiles, rss_mb, server_with_pid, write_results
from speakstream.client import AudioChunk, ConnectError, ConnectionClosed, Event, connect
from speakstream.client.pacing import send_paced, tokens

PARAGRAPH = (
    "Thanks for waiting. I looked at your order, and the package left our warehouse on "
    "Tuesday morning. It should arrive by Friday, unless the weather slows the trucks down "
    "on the way north. If it does not arrive by then, call us again and we will send a new "
    "one at no cost to you. Would you like me to send you the tracking number by text "
    "message, or by email? I can also set up a delivery alert, so that you know the moment "
    "it reaches your door. Is there anything else I can help you with today?"
)
TOKENS_PER_S = 30.0
JITTER_BUFFER_MS = 100.0
TTFA_GOAL_MS = 300.0


def playback_underruns(chunks: list[tuple[float, float]], jitter_ms: float) -> list[float]:
    """Underruns (ms) of a listener that starts ``jitter_ms`` after the first chunk and
    plays in real time; ``chunks``: (arrival s, duration ms) in order."""
    if not chunks:
        return []
    play_end_s = chunks[0][0] + jitter_ms / 1000.0  # where the playhead is when audio runs out
    gaps = []
    for arrival_s, duration_ms in chunks:
        if arrival_s > play_end_s:
            gaps.append(1000.0 * (arrival_s - play_end_s))
            play_end_s = arrival_s
        play_end_s += duration_ms / 1000.0
    return gaps


async def one_listener(url: str, index: int) -> dict[str, Any]:
    try:
        return await _listen(url, index)
    except (ConnectionClosed, ConnectError) as exc:  # refused (busy) or dropped
        return {
            "ttfa_ms": None,
            "underruns": 0,
            "underrun_ms": 0.0,
            "audio_s": 0.0,
            "errors": [f"closed: {exc}"[:80]],
            "refused": True,
        }


async def _listen(url: str, index: int) -> dict[str, Any]:
    async with await connect(url) as conn:
        rate_hz = int(conn.ready["settings"]["sample_rate_hz"])
        ctx = await conn.open_context(f"l{index}", encoding="pcm_s16le")
        sent_at: list[tuple[int, float]] = []
        sender = asyncio.create_task(send_paced(ctx, tokens(PARAGRAPH, TOKENS_PER_S), sent_at))
        chunks: list[tuple[float, float]] = []
        errors = []
        async for item in ctx:
            if isinstance(item, AudioChunk):
                chunks.append((item.received_s, 1000.0 * len(item.data) / 2 / rate_hz))
            elif isinstance(item, Event) and item.type == "error":
                errors.append(item.data.get("code"))
                if item.data.get("code") == "busy":  # refused: its text goes nowhere
                    sender.cancel()
                    break
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    gaps = playback_underruns(chunks, JITTER_BUFFER_MS)
    refused = "busy" in errors and not chunks
    return {
        "refused": refused,
        "ttfa_ms": 1000.0 * (chunks[0][0] - sent_at[0][1]) if chunks else None,
        "underruns": len(gaps),
        "underrun_ms": round(sum(gaps), 1),
        "audio_s": sum(d for _, d in chunks) / 1000.0,
        "errors": errors,
    }


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def at_load(url: str, pid: int, listeners: int) -> dict[str, Any]:
    cpu_before_s, wall_start_s = _cpu_s(pid), time.monotonic()
    peak_rss_mb = 0.0

    async def watch() -> None:
        nonlocal peak_rss_mb
        while True:
            peak_rss_mb = max(peak_rss_mb, rss_mb(pid))
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    results = await asyncio.gather(*(one_listener(url, i) for i in range(listeners)))
    watcher.cancel()
    wall_s = time.monotonic() - wall_start_s
    ttfa = [r["ttfa_ms"] for r in results if r["ttfa_ms"] is not None]
    return {
        "listeners": listeners,
        "ttfa_ms": percentiles(ttfa),
        "streams_with_underruns": sum(1 for r in results if r["underruns"]),
        "streams_refused": sum(1 for r in results if r["refused"]),
        "underrun_ms_total": round(sum(r["underrun_ms"] for r in results), 1),
        "audio_s_per_s": round(sum(r["audio_s"] for r in results) / wall_s, 2),
        "server_cpu_cores": round((_cpu_s(pid) - cpu_before_s) / wall_s, 2),
        "server_peak_rss_mb": round(peak_rss_mb, 1),
        "server_rss_after_mb": round(rss_mb(pid), 1),
        "errors": sorted({e for r in results for e in r["errors"]}),
    }


def engine_limit_audio_s_per_s(seconds: float) -> float:
    """Piper in this process, every core busy with whole sentences: audio s per s."""
    from speakstream.engines import EngineSettings, SynthesisOptions, load_engine

    engine = load_engine("piper", EngineSettings())
    voice = engine.capabilities.default_voice
    sentences = [s.strip() + "." for s in PARAGRAPH.split(".") if s.strip()]
    workers = os.cpu_count() or 1
    deadline_s = time.monotonic() + seconds

    def work() -> float:
        audio_s = 0.0
        while time.monotonic() < deadline_s:
            for sentence in sentences:
                for chunk in engine.synthesize(sentence, voice, SynthesisOptions()):
                    audio_s += chunk.duration_ms / 1000.0
        return audio_s

    start_s = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(lambda _: work(), range(workers)))
    elapsed_s = time.monotonic() - start_s
    engine.close()
    return total / elapsed_s


async def load_async(counts: list[int]) -> dict[str, Any]:
    rows = []
    async with server_with_pid() as (url, pid):
        idle_rss_mb = rss_mb(pid)
        for listeners in counts:
            row = await at_load(url, pid, listeners)
            print(
                f"N={listeners:3d}  ttfa p50/p95 {row['ttfa_ms'].get('p50')}/"
                f"{row['ttfa_ms'].get('p95')} ms  underrun streams "
                f"{row['streams_with_underruns']}  ({row['underrun_ms_total']} ms)  "
                f"refused {row['streams_refused']}  "
                f"audio {row['audio_s_per_s']} s/s  rss {row['server_peak_rss_mb']} MB"
            )
            rows.append(row)
            await asyncio.sleep(1.0)
        rss_after_mb = rss_mb(pid)
    return {"rows": rows, "server_idle_rss_mb": round(idle_rss_mb, 1), "rss_end_mb": rss_after_mb}


def _plot(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = results["rows"]
    n = [r["listeners"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(n, [r["ttfa_ms"].get("p95", 0) for r in rows], "o-", label="p95")
    left.plot(n, [r["ttfa_ms"].get("p50", 0) for r in rows], "o-", label="p50")
    left.axhline(TTFA_GOAL_MS, color="grey", linestyle="--")
    left.set_xlabel("LLM-paced listeners")
    left.set_ylabel("time to first audio (ms)")
    left.legend()
    right.plot(n, [r["underrun_ms_total"] for r in rows], "o-")
    right.set_xlabel("LLM-paced listeners")
    right.set_ylabel("underrun, all streams (ms)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run(*, quick: bool = False, output: Path | None = None) -> int:
    counts = [1, 4] if quick else [1, 2, 4, 8, 12, 16]
    print(f"load: N = {counts}, load average {os.getloadavg()[0]:.2f}")
    limit = engine_limit_audio_s_per_s(4.0 if quick else 15.0)
    print(f"engine limit: {limit:.1f} audio s per s (~{limit:.1f} real-time listeners)")
    results = asyncio.run(load_async(counts))
    served = [
        r["listeners"]
        for r in results["rows"]
        if r["streams_with_underruns"] == 0
        and r["streams_refused"] == 0
        and r["ttfa_ms"].get("p95", 1e9) <= TTFA_GOAL_MS
    ]
    best = max(served, default=0)
    results |= {
        "load_avg_at_start": os.getloadavg(),
        "engine_limit_audio_s_per_s": round(limit, 2),
        "listeners_served": best,
        "fraction_of_engine_limit": round(best / limit, 3) if limit else None,
        "goal": f"p95 first audio <= {TTFA_GOAL_MS:.0f} ms and no underrun",
    }
    print(
        f"served without stalls: {best} listeners = {results['fraction_of_engine_limit']} "
        "of the engine limit"
    )
    path = write_results(results, output, "bench/results/load.json")
    plot = _plot(results, path.with_suffix(".png"))
    if plot is not None:
        print(f"plot: {plot}")
    return 0
