"""Load: how many real-time listeners a server serves without stalls, against its peers.

``speakstream bench load`` starts the servers (each in its own process, 127.0.0.1 only)
and, for each N, runs N clients at once against each target in turn (the order rotates
from one N to the next, so the machine's drift weighs on all alike). A client sends a
~600-character paragraph and plays the audio as a listener would: from its first byte plus
a 100 ms jitter buffer, in real time; an underrun is every moment the playback passes the
audio received. The targets (``TARGETS``; the text reaches each as its protocol allows):

* ``speakstream``: our server (concurrent mode), native ``/v1/stream``, word tokens at
  30 tokens/s (an LLM);
* ``speakstream-sequential``: our server in the seed's sequential mode
  (``--no-bidirectional-streaming-enabled``), the same clients;
* ``wyoming-piper-stream``: the reference Wyoming server (``bench.peers``) with
  ``synthesize-start`` / a ``synthesize-chunk`` per token at 30 tokens/s / ``synthesize-stop``;
* ``wyoming-piper-synthesize``: the same server, the whole paragraph in one ``synthesize``
  when the client starts (before an LLM would have written it: in the peer's favour);
* ``piper-http``: Piper's own ``python -m piper.http_server``, the whole paragraph in one
  ``POST /synthesize`` when the client starts (a WAV that comes when all is synthesized).

Per target and N: time to first audio (first text sent to first audio byte) p50/p95/p99,
streams with an underrun, total underrun ms, refused streams, audio seconds delivered
per second of wall time, the server's CPU and RSS (and, for speakstream, the stall ms
its own ``done`` messages report, a listener without jitter buffer: the server's view of
the same underruns); per target the largest N with p95 first audio <= 300 ms, no
underrun and none refused, as a fraction of the engine's own limit measured in the same
run (Piper in the benchmark process with every core busy, in audio seconds per second:
how many real-time listeners the engine could feed if nothing else cost anything;
measured before the servers start and again after they stop, the mean of both, as a
shared machine's speed drifts); each peer's numbers over speakstream's. N defaults to 1,
2, 4, 8, 12, 16 (``--quick``: 1, 2 and a 2-sentence text); ``LOAD_BENCH_LISTENERS``
(e.g. ``1,4``) and ``LOAD_BENCH_TARGETS`` (names, comma-separated) choose others. The N
clients start at once (a burst: the hardest case), or with ``LOAD_BENCH_ARRIVAL_S``
(e.g. ``2``) evenly over that many seconds, as users arrive at a service.
Results go to ``bench/results/load.json`` (``load-arrivals.json`` with an arrival
window), with a PNG plot when matplotlib is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speakstream.bench import listeners
from speakstream.bench.common import percentiles, rss_mb, server_with_pid, write_results
from speakstream.bench.listeners import Heard
from speakstream.bench.playback import Playback

PARAGRAPH = (
    "Thanks for waiting. I looked at your order, and the package left our warehouse on "
    "Tuesday morning. It should arrive by Friday, unless the weather slows the trucks down "
    "on the way north. If it does not arrive by then, call us again and we will send a new "
    "one at no cost to you. Would you like me to send you the tracking number by text "
    "message, or by email? I can also set up a delivery alert, so that you know the moment "
    "it reaches your door. Is there anything else I can help you with today?"
)
QUICK_TEXT = PARAGRAPH.split(" It should")[0]  # two sentences, for --quick and the tests
TOKENS_PER_S = 30.0
JITTER_BUFFER_MS = 100.0
TTFA_GOAL_MS = 300.0
LISTENERS_ENV = "LOAD_BENCH_LISTENERS"
ARRIVAL_ENV = "LOAD_BENCH_ARRIVAL_S"  # the clients start evenly over this many seconds
TARGETS_ENV = "LOAD_BENCH_TARGETS"
REFERENCE = "speakstream"


@dataclass(frozen=True, slots=True)
class Target:
    """One way to serve the listeners: which server, and how the text reaches it."""

    server: str  # a key of SERVERS
    text_arrives: str


TARGETS: dict[str, Target] = {
    "speakstream": Target("speakstream", f"native /v1/stream, word tokens at {TOKENS_PER_S:g}/s"),
    "speakstream-sequential": Target(
        "speakstream-sequential", f"native /v1/stream, word tokens at {TOKENS_PER_S:g}/s"
    ),
    "wyoming-piper-stream": Target(
        "wyoming-piper",
        f"synthesize-start, a synthesize-chunk per word token at {TOKENS_PER_S:g}/s, "
        "synthesize, synthesize-stop",
    ),
    "wyoming-piper-synthesize": Target(
        "wyoming-piper", "the whole text in one synthesize at the start (no streamed text)"
    ),
    "piper-http": Target(
        "piper-http", "the whole text in one POST /synthesize at the start (no streamed text)"
    ),
}
SERVERS = ("speakstream", "speakstream-sequential", "wyoming-piper", "piper-http")
Address = str | int  # a WebSocket URL (ours) or a loopback TCP port (peers)


def listen(target: str, address: Address, index: int, text: str) -> Awaitable[Heard]:
    """One client of ``target`` at ``address`` (its server's), sending ``text``."""
    if TARGETS[target].server.startswith("speakstream"):
        return listeners.native(str(address), f"l{index}", text, pace_tokens_per_s=TOKENS_PER_S)
    port = int(address)
    if target == "wyoming-piper-stream":
        return listeners.wyoming(port, text, streaming=True, pace_tokens_per_s=TOKENS_PER_S)
    if target == "wyoming-piper-synthesize":
        return listeners.wyoming(port, text, streaming=False)
    return listeners.piper_http(port, text)


def listener_result(heard: Heard) -> dict[str, Any]:
    # a listener starting JITTER_BUFFER_MS after the first chunk, in real time
    gaps = Playback(heard.chunks, JITTER_BUFFER_MS).gaps
    return {
        "refused": heard.refused,
        "ttfa_ms": heard.ttfa_ms,
        "underruns": len(gaps),
        "underrun_ms": round(sum(gaps), 1),
        "audio_s": heard.audio_s,
        "errors": heard.errors,
        "server_stall_ms": heard.server_stall_ms,
        "server_segments": heard.server_segments,
    }


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def at_load(
    client: Callable[[int], Awaitable[Heard]], pid: int, count: int, arrival_s: float = 0.0
) -> dict[str, Any]:
    """``count`` clients (``client(index)``), all at once or, with ``arrival_s``, one
    every ``arrival_s / count`` seconds; the server is process ``pid``."""
    cpu_before_s, wall_start_s = _cpu_s(pid), time.monotonic()
    peak_rss_mb = 0.0

    async def watch() -> None:
        nonlocal peak_rss_mb
        while True:
            peak_rss_mb = max(peak_rss_mb, rss_mb(pid))
            await asyncio.sleep(0.5)

    async def guarded(index: int) -> Heard:
        await asyncio.sleep(index * arrival_s / count)
        try:
            return await client(index)
        except (OSError, EOFError, ValueError) as exc:  # a dropped or refused connection
            return Heard(errors=[f"{type(exc).__name__}: {exc}"[:80]])

    watcher = asyncio.create_task(watch())
    try:
        heard = await asyncio.gather(*(guarded(i) for i in range(count)))
    finally:
        watcher.cancel()
    wall_s = time.monotonic() - wall_start_s
    results = [listener_result(h) for h in heard]
    ttfa = [r["ttfa_ms"] for r in results if r["ttfa_ms"] is not None]
    return {
        "listeners": count,
        "ttfa_ms": percentiles(ttfa),
        "streams_with_underruns": sum(1 for r in results if r["underruns"]),
        "streams_refused": sum(1 for r in results if r["refused"]),
        "streams_without_audio": sum(1 for r in results if r["ttfa_ms"] is None),
        "underrun_ms_total": round(sum(r["underrun_ms"] for r in results), 1),
        # the server's own count (speakstream: done's stall_ms, no jitter buffer; else None)
        "server_stall_ms_total": _total([r["server_stall_ms"] for r in results]),
        "server_segments_total": _total([r["server_segments"] for r in results]),
        "audio_s_per_s": round(sum(r["audio_s"] for r in results) / wall_s, 2),
        "server_cpu_cores": round((_cpu_s(pid) - cpu_before_s) / wall_s, 2),
        "server_peak_rss_mb": round(peak_rss_mb, 1),
        "server_rss_after_mb": round(rss_mb(pid), 1),
        "errors": sorted({e for r in results for e in r["errors"]}),
    }


def _total(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known), 1) if known else None


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


@contextlib.asynccontextmanager
async def _server(name: str) -> AsyncIterator[tuple[Address, int]]:
    """One of ``SERVERS`` running: (its address, its process id)."""
    if name in ("speakstream", "speakstream-sequential"):
        flags = () if name == "speakstream" else ("--no-bidirectional-streaming-enabled",)
        async with server_with_pid(*flags) as (url, pid):
            yield url, pid
        return
    from speakstream.bench.peers import peer

    async with peer(name) as running:
        yield running.port, running.pid


def _row_line(target: str, row: dict[str, Any]) -> str:
    ttfa = row["ttfa_ms"]
    return (
        f"N={row['listeners']:3d}  {target:<25} ttfa p50/p95/p99 {ttfa.get('p50')}/"
        f"{ttfa.get('p95')}/{ttfa.get('p99')} ms  underrun streams "
        f"{row['streams_with_underruns']} ({row['underrun_ms_total']} ms)  refused "
        f"{row['streams_refused']}  audio {row['audio_s_per_s']} s/s  "
        f"rss {row['server_peak_rss_mb']} MB"
    )


async def load_async(
    counts: Sequence[int], targets: Sequence[str], text: str = PARAGRAPH, arrival_s: float = 0.0
) -> dict[str, Any]:
    """Every target at every N, one server process per ``SERVERS`` entry they need."""
    needed = [s for s in SERVERS if any(TARGETS[t].server == s for t in targets)]
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    async with contextlib.AsyncExitStack() as stack:
        running = {s: await stack.enter_async_context(_server(s)) for s in needed}
        idle_rss_mb = {s: round(rss_mb(pid), 1) for s, (_, pid) in running.items()}
        for i, count in enumerate(counts):
            shift = i % len(targets)
            for target in [*targets[shift:], *targets[:shift]]:
                address, pid = running[TARGETS[target].server]

                def client(
                    index: int, target: str = target, address: Address = address
                ) -> Awaitable[Heard]:
                    return listen(target, address, index, text)

                row = await at_load(client, pid, count, arrival_s)
                print(_row_line(target, row), flush=True)
                rows[target].append(row)
                await asyncio.sleep(1.0)
        end_rss_mb = {s: round(rss_mb(pid), 1) for s, (_, pid) in running.items()}
    return {
        name: {
            "server": TARGETS[name].server,
            "text_arrives": TARGETS[name].text_arrives,
            "server_idle_rss_mb": idle_rss_mb[TARGETS[name].server],
            "server_rss_end_mb": end_rss_mb[TARGETS[name].server],
            "rows": target_rows,
        }
        for name, target_rows in rows.items()
    }


def meets_goal(row: dict[str, Any]) -> bool:
    """Whether every listener of ``row`` was served: p95 first audio within the goal, no
    underrun, none refused, none left without audio."""
    return not (
        row["streams_with_underruns"]
        or row["streams_refused"]
        or row["streams_without_audio"]
        or row["ttfa_ms"].get("p95", 1e9) > TTFA_GOAL_MS
    )


def listeners_served(rows: list[dict[str, Any]]) -> int:
    """The largest N whose row meets the goal, and every smaller N measured too: a row
    that misses it ends the count."""
    served = 0
    for r in sorted(rows, key=lambda r: int(r["listeners"])):
        if not meets_goal(r):
            break
        served = int(r["listeners"])
    return served


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return round(value / reference, 3)


def ratios_to_reference(targets: dict[str, Any]) -> dict[str, Any]:
    """Each target's numbers over speakstream's (concurrent), per N and overall."""
    if REFERENCE not in targets:
        return {}
    reference = targets[REFERENCE]
    by_n = {r["listeners"]: r for r in reference["rows"]}
    ratios: dict[str, Any] = {}
    for name, target in targets.items():
        if name == REFERENCE:
            continue
        per_n = []
        for row in target["rows"]:
            ref = by_n.get(row["listeners"])
            if ref is None:
                continue
            per_n.append(
                {
                    "listeners": row["listeners"],
                    "ttfa_p50": _ratio(row["ttfa_ms"].get("p50"), ref["ttfa_ms"].get("p50")),
                    "ttfa_p95": _ratio(row["ttfa_ms"].get("p95"), ref["ttfa_ms"].get("p95")),
                    "audio_s_per_s": _ratio(row["audio_s_per_s"], ref["audio_s_per_s"]),
                }
            )
        ratios[name] = {
            "per_listeners": per_n,
            "listeners_served": _ratio(target["listeners_served"], reference["listeners_served"]),
        }
    return ratios


def _plot(results: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for name, target in results["targets"].items():
        rows = target["rows"]
        n = [r["listeners"] for r in rows]
        axes[0].plot(n, [r["ttfa_ms"].get("p95", float("nan")) for r in rows], "o-", label=name)
        axes[1].plot(n, [r["underrun_ms_total"] for r in rows], "o-", label=name)
        axes[2].plot(n, [r["audio_s_per_s"] for r in rows], "o-", label=name)
    axes[0].axhline(TTFA_GOAL_MS, color="grey", linestyle="--")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("time to first audio, p95 (ms)")
    axes[1].set_ylabel("underrun, all streams (ms)")
    axes[2].axhline(results["engine_limit_audio_s_per_s"], color="grey", linestyle="--")
    axes[2].set_ylabel("audio seconds delivered per second")
    for ax in axes:
        ax.set_xlabel("listeners at once")
        ax.set_xticks(results["listeners"])
    axes[0].legend(fontsize="small")
    starts = (
        f"starting over {results['arrival_window_s']:g} s"
        if results.get("arrival_window_s")
        else "starting at once"
    )
    fig.suptitle(
        f"bench load: {results['text_chars']} characters per listener, {starts}, same voice"
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _targets(results: dict[str, Any]) -> dict[str, Any]:
    """The results' targets; a results file from before the peers holds speakstream's only."""
    if "targets" in results:
        targets: dict[str, Any] = results["targets"]
        return targets
    keys = ("rows", "listeners_served", "fraction_of_engine_limit")
    return {REFERENCE: {key: results.get(key) for key in keys}}


def markdown_table(results: dict[str, Any]) -> str:
    """The README tables: one row per target and N, then the listeners each serves."""
    targets = _targets(results)
    lines = [
        "| target | listeners | first audio p50 / p95 / p99 ms | streams with underruns "
        "| underrun, all streams (ms) | the server's own stall ms | refused | audio s per s "
        "| server peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, target in targets.items():
        for r in target["rows"]:
            t = r["ttfa_ms"]
            stall_ms = r.get("server_stall_ms_total")
            lines.append(
                f"| {name} | {r['listeners']} | {t.get('p50')} / {t.get('p95')} / {t.get('p99')} "
                f"| {r['streams_with_underruns']} | {r['underrun_ms_total']} "
                f"| {'—' if stall_ms is None else stall_ms} "
                f"| {r['streams_refused']} | {r['audio_s_per_s']} | {r['server_peak_rss_mb']} |"
            )
    lines.append("")
    lines.append("| target | listeners served | of the engine limit | served / speakstream's |")
    lines.append("|---|---|---|---|")
    ratios = results.get("ratios_vs_speakstream", {})
    for name, target in targets.items():
        ratio = ratios.get(name, {}).get("listeners_served", "1" if name == REFERENCE else "")
        lines.append(
            f"| {name} | {target['listeners_served']} "
            f"| {target['fraction_of_engine_limit']} | {ratio} |"
        )
    return "\n".join(lines)


def _from_env(name: str, default: Sequence[str]) -> list[str]:
    value = os.environ.get(name, "")
    return [v.strip() for v in value.split(",") if v.strip()] or list(default)


def run(
    *,
    quick: bool = False,
    output: Path | None = None,
    counts: Sequence[int] | None = None,
    targets: Sequence[str] | None = None,
) -> int:
    counts = list(counts or [int(n) for n in _from_env(LISTENERS_ENV, [])])
    counts = counts or ([1, 2] if quick else [1, 2, 4, 8, 12, 16])
    chosen = list(targets or _from_env(TARGETS_ENV, list(TARGETS)))
    unknown = [t for t in chosen if t not in TARGETS]
    if unknown:
        print(f"load: no target named {', '.join(unknown)}; there are: {', '.join(TARGETS)}")
        return 2
    from speakstream.bench.peers import PEER_KINDS, missing

    for kind in PEER_KINDS:
        reason = missing(kind) if any(TARGETS[t].server == kind for t in chosen) else None
        if reason is not None:
            print(f"load: leaving out the {kind} targets: {reason}")
            chosen = [t for t in chosen if TARGETS[t].server != kind]
    text = QUICK_TEXT if quick else PARAGRAPH
    arrival_s = float(os.environ.get(ARRIVAL_ENV, "0") or 0)
    starts = f"starting evenly over {arrival_s:g} s" if arrival_s else "starting at once"
    load_avg_at_start = os.getloadavg()
    print(
        f"load: N = {counts}, targets {chosen}, clients {starts}, "
        f"load average {load_avg_at_start[0]:.2f}"
    )
    for name in chosen:
        print(f"  {name}: {TARGETS[name].text_arrives}")
    limit_seconds = 4.0 if quick else 15.0
    limit_before = engine_limit_audio_s_per_s(limit_seconds)
    print(
        f"engine limit: {limit_before:.1f} audio s per s (~{limit_before:.1f} real-time listeners)"
    )
    per_target = asyncio.run(load_async(counts, chosen, text, arrival_s))
    # measured again once the servers are gone: a shared machine's speed drifts; the
    # fractions are of the mean of both
    limit_after = engine_limit_audio_s_per_s(limit_seconds)
    print(f"engine limit after the run: {limit_after:.1f} audio s per s")
    limit = (limit_before + limit_after) / 2
    for target in per_target.values():
        best = listeners_served(target["rows"])
        target["listeners_served"] = best
        target["fraction_of_engine_limit"] = round(best / limit, 3) if limit else None
    results: dict[str, Any] = {
        "benchmark": "load",
        "quick": quick,
        "listeners": counts,
        "text_chars": len(text),
        "tokens_per_s": TOKENS_PER_S,
        "jitter_buffer_ms": JITTER_BUFFER_MS,
        "arrival_window_s": arrival_s,
        "load_avg_at_start": load_avg_at_start,
        "engine_limit_audio_s_per_s": round(limit, 2),
        "engine_limit_before_after": [round(limit_before, 2), round(limit_after, 2)],
        "goal": f"p95 first audio <= {TTFA_GOAL_MS:.0f} ms, no underrun, none refused",
        "targets": per_target,
        "ratios_vs_speakstream": ratios_to_reference(per_target),
    }
    print("\nserved without stalls (goal: " + results["goal"] + "):")
    for name, target in per_target.items():
        print(
            f"  {name:<25} {target['listeners_served']:3d} listeners = "
            f"{target['fraction_of_engine_limit']} of the engine limit"
        )
    for name, ratio in results["ratios_vs_speakstream"].items():
        print(f"  {name} over speakstream: served x{ratio['listeners_served']}")
        for r in ratio["per_listeners"]:
            print(
                f"    N={r['listeners']:3d}  ttfa p50 x{r['ttfa_p50']}  p95 x{r['ttfa_p95']}  "
                f"audio s/s x{r['audio_s_per_s']}"
            )
    default = "bench/results/load-arrivals.json" if arrival_s else "bench/results/load.json"
    path = write_results(results, output, default)
    plot = _plot(results, path.with_suffix(".png"))
    if plot is not None:
        print(f"plot: {plot}")
    return 0
