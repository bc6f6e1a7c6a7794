"""Wyoming: time to first audio through our Wyoming listener against wyoming-piper.

``speakstream bench wyoming`` starts our server with its Wyoming listener
(``--wyoming-port``, ``server/compat/wyoming.py``) and the reference server,
wyoming-piper (``bench.peers``), with the same voice, each in its own process on
127.0.0.1, and drives both with the ``wyoming`` package's client (``bench.listeners``):

* ``synthesize``: the whole text in one event; first audio is timed from that event;
* ``stream``: ``synthesize-start``, a ``synthesize-chunk`` per word token at 30 tokens/s
  (an LLM), ``synthesize`` (the whole text, as Home Assistant sends it), ``synthesize-stop``;
  first audio is timed from the first chunk.

Each round takes the next of three ~90-character texts and, for 1, 4 and 8 clients at once
and each mode, runs the same load on one server, then on the other (which goes first
alternates from round to round), reading every reply to its end so the next load starts
idle. Per mode and client count: time to first audio p50/p95/p99 on each server, the
clients that got no audio and why (ours refuses with ``busy`` when admission control
says the engine cannot serve one more listener in real time), and wyoming-piper's p50
and p95 over ours (above 1: ours is faster). Results go to
``bench/results/wyoming.json``; ``--quick`` runs 2 rounds, the full run 20.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from speakstream.bench import listeners
from speakstream.bench.common import free_port, percentiles, server_with_pid, write_results
from speakstream.bench.peers import missing, wyoming_piper

TEXTS = [
    "Sure, here is what I found about the weather tomorrow: mostly sunny, with a light breeze.",
    "The meeting moved to Thursday at three, in the small room on the second floor, by the stairs.",
    "Your order has shipped, and it should arrive within two business days at your front door.",
]
CLIENTS = (1, 4, 8)
MODES = ("synthesize", "stream")
SERVERS = ("speakstream", "wyoming-piper")
TOKENS_PER_S = 30.0
READY_TIMEOUT_S = 60.0


@contextlib.asynccontextmanager
async def speakstream_wyoming() -> AsyncIterator[int]:
    """Our server with its Wyoming listener on a free loopback port: yields the port."""
    port = free_port()
    async with server_with_pid("--wyoming-port", str(port)):
        deadline_s = time.monotonic() + READY_TIMEOUT_S
        while True:  # the listener starts with the app; it answers a synthesize when ready
            try:
                heard = await asyncio.wait_for(
                    listeners.wyoming(port, "Hello.", streaming=False), 30
                )
                if heard.chunks:
                    break
                raise OSError(f"no audio: {heard.errors}")
            except (OSError, TimeoutError):
                if time.monotonic() > deadline_s:
                    raise RuntimeError("our Wyoming listener did not answer") from None
                await asyncio.sleep(0.3)
        yield port


async def _load(port: int, mode: str, clients: int, text: str) -> tuple[list[float], list[str]]:
    pace = TOKENS_PER_S if mode == "stream" else None
    heard = await asyncio.gather(
        *(
            listeners.wyoming(port, text, streaming=mode == "stream", pace_tokens_per_s=pace)
            for _ in range(clients)
        )
    )
    ttfa = [h.ttfa_ms for h in heard if h.ttfa_ms is not None]
    errors = [e for h in heard for e in h.errors]
    errors += ["no audio"] * sum(1 for h in heard if h.ttfa_ms is None and not h.errors)
    return ttfa, errors


Key = tuple[str, str, int]  # (server, mode, clients at once)


async def measure(
    ports: dict[str, int], rounds: int, clients: Sequence[int]
) -> tuple[dict[Key, list[float]], dict[Key, list[str]]]:
    """TTFA samples and errors (``busy``: refused) per (server, mode, clients)."""
    keys = [(s, m, n) for s in ports for m in MODES for n in clients]
    samples: dict[Key, list[float]] = {k: [] for k in keys}
    errors: dict[Key, list[str]] = {k: [] for k in keys}
    for r in range(rounds):
        text = TEXTS[r % len(TEXTS)]
        order = list(ports) if r % 2 == 0 else list(reversed(ports))
        for n in clients:
            for mode in MODES:
                for server in order:
                    ttfa, errs = await _load(ports[server], mode, n, text)
                    samples[(server, mode, n)] += ttfa
                    errors[(server, mode, n)] += errs
        print(f"round {r + 1}/{rounds} done", flush=True)
    return samples, errors


def summarize(
    samples: dict[Key, list[float]], errors: dict[Key, list[str]], clients: Sequence[int]
) -> list[dict[str, Any]]:
    rows = []
    for mode in MODES:
        for n in clients:
            ours = percentiles(samples[("speakstream", mode, n)])
            theirs = percentiles(samples[("wyoming-piper", mode, n)])
            row: dict[str, Any] = {
                "mode": mode,
                "clients": n,
                "speakstream_ttfa_ms": ours,
                "wyoming_piper_ttfa_ms": theirs,
                "speakstream_errors": errors[("speakstream", mode, n)],
                "wyoming_piper_errors": errors[("wyoming-piper", mode, n)],
            }
            for p in ("p50", "p95"):
                mine, other = ours.get(p), theirs.get(p)
                row[f"{p}_wyoming_piper_over_speakstream"] = (
                    round(other / mine, 2) if mine and other is not None else None
                )
            rows.append(row)
    return rows


def markdown_table(results: dict[str, Any]) -> str:
    lines = [
        "| mode | clients at once | speakstream p50 / p95 ms | wyoming-piper p50 / p95 ms "
        "| wyoming-piper / speakstream, p50 / p95 | refused or failed, ours / theirs |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        ours, theirs = r["speakstream_ttfa_ms"], r["wyoming_piper_ttfa_ms"]
        lines.append(
            f"| {r['mode']} | {r['clients']} | {ours.get('p50')} / {ours.get('p95')} "
            f"| {theirs.get('p50')} / {theirs.get('p95')} "
            f"| x{r['p50_wyoming_piper_over_speakstream']} / "
            f"x{r['p95_wyoming_piper_over_speakstream']} "
            f"| {len(r['speakstream_errors'])} / {len(r['wyoming_piper_errors'])} |"
        )
    return "\n".join(lines)


def run(
    *,
    quick: bool = False,
    output: Path | None = None,
    rounds: int | None = None,
    clients: Sequence[int] = CLIENTS,
) -> int:
    reason = missing("wyoming-piper")
    if reason is not None:
        print(f"wyoming: cannot run the reference server: {reason}")
        return 2
    rounds = rounds or (2 if quick else 20)

    async def main() -> tuple[dict[Key, list[float]], dict[Key, list[str]]]:
        async with speakstream_wyoming() as ours, wyoming_piper() as theirs:
            return await measure(
                {"speakstream": ours, "wyoming-piper": theirs.port}, rounds, clients
            )

    samples, errors = asyncio.run(main())
    rows = summarize(samples, errors, clients)
    results = {
        "benchmark": "wyoming",
        "quick": quick,
        "rounds": rounds,
        "clients": list(clients),
        "tokens_per_s": TOKENS_PER_S,
        "modes": {
            "synthesize": "the whole text in one synthesize; timed from it",
            "stream": f"synthesize-start, a synthesize-chunk per word token at "
            f"{TOKENS_PER_S:g}/s, synthesize, synthesize-stop; timed from the first chunk",
        },
        "rows": rows,
    }
    path = write_results(results, output, "bench/results/wyoming.json")
    print(f"time to first audio (ms), {rounds} rounds; results in {path}")
    print(markdown_table(results))
    for (server, mode, n), errs in errors.items():
        if errs:
            print(
                f"{server} {mode} x{n}: {len(errs)} without audio ({', '.join(sorted(set(errs)))})"
            )
    return 0
