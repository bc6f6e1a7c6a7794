"""Latency benchmark: ``speakstream bench [latency]`` (or ``python -m speakstream bench``).

In one run on this machine it measures, against a real server process on 127.0.0.1:

* time to first audio (first text frame sent -> first audio byte received) for
  (a) text typed at 12 characters/s, (b) LLM-like tokens at 30 tokens/s and
  (c) a whole paragraph in one message; also measured from the message that completed
  the first segment (the keystroke or token after which the server could start);
* the engine floor: the same first segment synthesized in this process, no server,
  time to its first audio chunk; and the server's overhead: the time from the completing
  message to first audio minus the floor of that very text. Because the engine's own time
  varies by a few ms from run to run, the overhead is also given against the engine time
  the server measured for that very segment in that very trial (``segment`` events carry
  ``queue_ms`` and ``first_chunk_ms``): everything but the engine;
* the sequential mode (``bidirectional_streaming.enabled = false``) against the concurrent
  mode on the same inputs, trial by trial in alternation (both servers run, one at a
  time is spoken to), and four clients at once;
* for each: time to the last audio byte, and the worst playback underrun (how late a
  frame arrived against a player that started at the first byte).

Each percentile is over all trials; results go to ``bench/results/latency.json``.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speakstream.bench.common import percentiles, server_process, write_results
from speakstream.client import AudioChunk, Connection, Event, ServerError, connect
from speakstream.client.pacing import Piece, SentAt, send_paced, sent_by, tokens, typed
from speakstream.version import __version__

SAMPLE_RATE_HZ = 22050
BYTES_PER_SAMPLE = 2
TYPING_CHARS_PER_S = 12.0
LLM_TOKENS_PER_S = 30.0

SENTENCES = [
    "Sure, I can help you with that right away.",
    "Hello there, how are you doing this morning?",
    "Your order has shipped and will arrive on Tuesday.",
    "Let me check the weather for you in a moment.",
    "Thanks for calling, please hold while I connect you.",
    "The meeting was moved to three thirty this afternoon.",
    "Okay, turning the living room lights off now.",
    "Here is a quick summary of what we discussed today.",
]
PARAGRAPH = (
    "Streaming speech synthesis starts speaking before the whole text is known. "
    "The server cuts the incoming text into short segments, synthesizes them one after "
    "another, and sends the audio as soon as each piece is ready. The listener hears the "
    "first words while the rest is still being written."
)


@dataclass
class Trial:
    ttfa_ms: float  # first text frame sent -> first audio byte
    ttfa_from_trigger_ms: float  # message that completed the first segment -> first audio
    first_segment: str
    engine_ms: float  # the server's own queue + engine time to the first segment's first chunk
    total_ms: float  # first text frame sent -> last audio byte
    underrun_ms: float  # worst lateness of a frame against real-time playback
    audio_ms: float


@dataclass
class Scenario:
    name: str
    trials: list[Trial] = field(default_factory=list)


def typing_messages(text: str) -> list[Piece]:
    return typed(text, TYPING_CHARS_PER_S)


def llm_messages(text: str) -> list[Piece]:
    return tokens(text, LLM_TOKENS_PER_S)


def paragraph_messages(_: str) -> list[Piece]:
    return [(PARAGRAPH, 0.0)]


async def run_trial(conn: Connection, context: str, messages: list[Piece]) -> Trial:
    ctx = conn.context(context)
    sent_at: SentAt = []  # (end offset after this message, send time)
    sender = asyncio.create_task(send_paced(ctx, messages, sent_at))
    chunks: list[AudioChunk] = []
    first_segment: dict[str, Any] | None = None

    def keep(item: AudioChunk | Event) -> None:
        nonlocal first_segment
        if isinstance(item, AudioChunk):
            chunks.append(item)
        elif item.type == "segment" and first_segment is None:
            first_segment = item.data

    try:
        await ctx.drain(keep)
    except ServerError as exc:
        raise RuntimeError(f"server error during benchmark: {exc.args[0]}") from None
    await sender
    if not chunks or first_segment is None:
        raise RuntimeError("no audio received")
    start_s = sent_at[0][1]
    trigger_s = sent_by(sent_at, first_segment["end"])
    assert trigger_s is not None
    first_s = chunks[0].received_s
    played_ms = 0.0
    underrun_ms = 0.0
    for chunk in chunks:
        due_s = first_s + played_ms / 1000.0
        underrun_ms = max(underrun_ms, 1000.0 * (chunk.received_s - due_s))
        played_ms += 1000.0 * len(chunk.data) / BYTES_PER_SAMPLE / SAMPLE_RATE_HZ
    return Trial(
        ttfa_ms=1000.0 * (first_s - start_s),
        ttfa_from_trigger_ms=1000.0 * (first_s - trigger_s),
        first_segment=str(first_segment["text"]),
        engine_ms=float(first_segment["queue_ms"]) + float(first_segment["first_chunk_ms"]),
        total_ms=1000.0 * (chunks[-1].received_s - start_s),
        underrun_ms=underrun_ms,
        audio_ms=played_ms,
    )


SCENARIOS = ("typing_12cps", "llm_30tps", "paragraph", "four_clients_llm")


async def run_modes(urls: dict[str, str], trials: int) -> dict[str, dict[str, Scenario]]:
    """Every trial runs on each server in turn (alternating which goes first), so drift of
    the machine over the run (clock speed, caches, other load) weighs on both alike."""
    results = {mode: {name: Scenario(name) for name in SCENARIOS} for mode in urls}
    makers: dict[str, Callable[[str], list[Piece]]] = {
        "typing_12cps": typing_messages,
        "llm_30tps": llm_messages,
        "paragraph": paragraph_messages,
    }
    conns = {mode: await connect(url) for mode, url in urls.items()}
    try:
        for i in range(trials):
            order = list(urls) if i % 2 == 0 else list(reversed(urls))
            sentence = SENTENCES[i % len(SENTENCES)]
            for name, make in makers.items():
                for mode in order:
                    trial = await run_trial(conns[mode], f"{name}-{i}", make(sentence))
                    results[mode][name].trials.append(trial)
    finally:
        for conn in conns.values():
            await conn.close()

    async def one_client(url: str, k: int, i: int) -> Trial:
        async with await connect(url) as conn:
            sentence = SENTENCES[(i + k) % len(SENTENCES)]
            return await run_trial(conn, f"c{k}", llm_messages(sentence))

    for i in range(max(1, trials // 2)):
        for mode in list(urls) if i % 2 == 0 else list(reversed(urls)):
            batch = await asyncio.gather(*(one_client(urls[mode], k, i) for k in range(4)))
            results[mode]["four_clients_llm"].trials.extend(batch)
    return results


IDLE_BEFORE_FLOOR_S = 0.3


def measure_floor(texts: set[str], repeats: int, idle_s: float) -> dict[str, list[float]]:
    """Time to first chunk of each first segment, in this process, with no server.

    ``idle_s``: pause before each synthesis. Back to back (0) the engine runs warm; after
    a pause, as at the start of a new utterance on a server, it runs colder and slower.
    """
    from speakstream.engines import EngineSettings, SynthesisOptions, load_engine

    engine = load_engine("piper", EngineSettings())
    voice = engine.capabilities.default_voice
    floors: dict[str, list[float]] = {}
    for text in sorted(texts):
        samples = []
        for _ in range(repeats):
            time.sleep(idle_s)
            start = time.perf_counter()
            iterator = iter(engine.synthesize(text, voice, SynthesisOptions()))
            next(iterator, None)
            samples.append(1000.0 * (time.perf_counter() - start))
            for _ in iterator:
                pass
        floors[text] = samples
    engine.close()
    return floors


def _overhead(trials: list[Trial], floors: dict[str, list[float]]) -> list[float]:
    """Each trial's time from trigger to first audio, minus the floor of its first segment."""
    return [t.ttfa_from_trigger_ms - statistics.median(floors[t.first_segment]) for t in trials]


def summarize(
    scenarios: dict[str, Scenario],
    floors: dict[str, list[float]],
    idle_floors: dict[str, list[float]],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, scenario in scenarios.items():
        trials = scenario.trials

        overhead = _overhead(trials, floors)
        out[name] = {
            "ttfa_ms": percentiles([t.ttfa_ms for t in trials]),
            "ttfa_from_trigger_ms": percentiles([t.ttfa_from_trigger_ms for t in trials]),
            "overhead_over_floor_ms": percentiles(overhead),
            "overhead_over_idle_floor_ms": percentiles(_overhead(trials, idle_floors)),
            "overhead_over_own_engine_time_ms": percentiles(
                [t.ttfa_from_trigger_ms - t.engine_ms for t in trials]
            ),
            "total_ms": percentiles([t.total_ms for t in trials]),
            "underrun_ms": percentiles([t.underrun_ms for t in trials]),
            "first_segments": sorted({t.first_segment for t in trials}),
        }
    return out


async def bench_async(trials: int) -> dict[str, Any]:
    async with (
        server_process("--bidirectional-streaming-enabled") as concurrent_url,
        server_process("--no-bidirectional-streaming-enabled") as sequential_url,
    ):
        modes = await run_modes(
            {"concurrent": concurrent_url, "sequential": sequential_url}, trials
        )
    texts = {t.first_segment for s in modes.values() for sc in s.values() for t in sc.trials}
    floors = await asyncio.to_thread(measure_floor, texts, max(10, trials), 0.0)
    idle_floors = await asyncio.to_thread(measure_floor, texts, 5, IDLE_BEFORE_FLOOR_S)
    summary = {mode: summarize(sc, floors, idle_floors) for mode, sc in modes.items()}
    ratios: dict[str, dict[str, float]] = {}
    for name in summary["concurrent"]:
        conc, seq = summary["concurrent"][name], summary["sequential"][name]
        ratios[name] = {
            metric: round(seq[metric]["p50"] / conc[metric]["p50"], 3)
            for metric in ("ttfa_ms", "total_ms")
            if conc[metric].get("p50")
        }
    all_floor = [v for samples in floors.values() for v in samples]
    return {
        "speakstream": __version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        "trials_per_scenario": trials,
        "engine_floor_ms": {
            "all": percentiles(all_floor),
            "by_text": {text: percentiles(samples) for text, samples in floors.items()},
            "after_idle": percentiles([v for samples in idle_floors.values() for v in samples]),
            "idle_before_s": IDLE_BEFORE_FLOOR_S,
        },
        "modes": summary,
        "sequential_over_concurrent_p50": ratios,
    }


def print_report(results: dict[str, Any]) -> None:
    for key, label in (
        ("all", "back to back"),
        ("after_idle", f"after {IDLE_BEFORE_FLOOR_S} s idle"),
    ):
        p = results["engine_floor_ms"][key]
        print(f"engine floor ({label}): p50 {p['p50']} p95 {p['p95']} p99 {p['p99']} ms")
    for mode, scenarios in results["modes"].items():
        print(f"\n[{mode}]")
        print(f"{'scenario':<18} {'metric':<33} {'p50':>9} {'p95':>9} {'p99':>9}")
        for name, metrics in scenarios.items():
            for metric in (
                "ttfa_ms",
                "ttfa_from_trigger_ms",
                "overhead_over_floor_ms",
                "overhead_over_idle_floor_ms",
                "overhead_over_own_engine_time_ms",
                "total_ms",
                "underrun_ms",
            ):
                p = metrics[metric]
                print(f"{name:<18} {metric:<33} {p['p50']:>9} {p['p95']:>9} {p['p99']:>9}")
    print("\nsequential / concurrent (p50):")
    for name, ratio in results["sequential_over_concurrent_p50"].items():
        print(f"  {name:<18} " + "  ".join(f"{k} x{v}" for k, v in ratio.items()))


SCENARIO_NAMES = {
    "typing_12cps": "typing, 12 chars/s",
    "llm_30tps": "LLM tokens, 30/s",
    "paragraph": "paragraph, one message",
    "four_clients_llm": "4 clients at once, LLM tokens",
}


def markdown_table(results: dict[str, Any]) -> str:
    """The README's table, from a results file (``speakstream bench latency --table FILE``)."""
    floor = results["engine_floor_ms"]

    def trio(p: dict[str, float]) -> str:
        return f"{p['p50']} / {p['p95']} / {p['p99']}"

    lines = [
        "Engine floor (the first segment synthesized in-process, no server, time to its "
        f"first audio): **p50 {floor['all']['p50']} ms**, p95 {floor['all']['p95']}, p99 "
        f"{floor['all']['p99']} back to back; p50 {floor['after_idle']['p50']}, p95 "
        f"{floor['after_idle']['p95']}, p99 {floor['after_idle']['p99']} after 0.3 s idle.",
        "",
        "| scenario | mode | first audio after first text, p50 / p95 / p99 ms | after the "
        "completing message | overhead over the server's own engine time | overhead over "
        "warm floor (p50) | last audio (p50) | worst underrun (p95) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, label in SCENARIO_NAMES.items():
        for mode in ("concurrent", "sequential"):
            m = results["modes"][mode][name]
            lines.append(
                f"| {label} | {mode} | {trio(m['ttfa_ms'])} | {trio(m['ttfa_from_trigger_ms'])} "
                f"| {trio(m['overhead_over_own_engine_time_ms'])} | {m['overhead_over_floor_ms']['p50']} "
                f"| {m['total_ms']['p50']} | {m['underrun_ms']['p95']} |"
            )
    return "\n".join(lines)


def run(*, quick: bool = False, output: Path | None = None) -> int:
    trials = 4 if quick else 24
    results = asyncio.run(bench_async(trials))
    print_report(results)
    write_results(results, output, "bench/results/latency.json")
    return 0
