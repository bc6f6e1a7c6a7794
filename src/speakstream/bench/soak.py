"""Soak: a bounded mix of well-behaved and abusive clients against one server process.

``speakstream bench soak`` runs for ``duration_s`` (10 minutes; ``--quick``: 1 minute)
with a few concurrent workers, each repeating a scenario picked at random (seeded):
LLM-paced streams (30 tokens/s), barge-in cancels, clients that vanish mid-stream, bad
input (malformed JSON, lone surrogates, huge integers, binary frames, unknown types,
empty text) followed by a valid utterance on the same socket, and clients that stop
reading for a while. Traffic goes only to 127.0.0.1; the run stops by itself.

It reports the server's RSS over time (growth after warm-up must stay under
``RSS_GROWTH_LIMIT_MB``), every unexpected outcome (an error code the scenario did not
provoke, a missing answer, a server log line with a traceback or ERROR), time to first
audio percentiles in the first and last third of the run, and the server's connection
count at the end (must be back to 0). Exit status 0 only when all of that holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import websockets

from speakstream.bench.common import percentiles, rss_mb, server_with_pid, write_results
from speakstream.client import Event, connect
from speakstream.client.pacing import send_paced, tokens

RSS_GROWTH_LIMIT_MB = 150.0
PARAGRAPH = (
    "Thanks for waiting. I looked at your order, and the package left our warehouse on "
    "Tuesday morning. It should arrive by Friday, unless the weather slows the trucks down. "
    "Would you like me to send you the tracking number by text message?"
)
BAD_FRAMES: list[tuple[str | bytes, str]] = [
    ("{not json", "invalid_json"),
    ('{"type":"text","text":"a\\ud800b"}', "invalid_message"),
    ('{"type":"ping","id":' + "9" * 5000 + "}", "invalid_json"),
    (b"\x00\x01binary", "binary_not_supported"),
    ('{"type":"launch"}', "unknown_type"),
    ('{"type":"text","text":""}', "invalid_message"),
    ('{"type":"start","voice":null}', "invalid_message"),
]


class Soak:
    def __init__(self, url: str, deadline_s: float, seed: int) -> None:
        self.url = url
        self.deadline_s = deadline_s
        self.random = random.Random(seed)
        self.started_s = time.monotonic()
        self.ttfa: list[tuple[float, float]] = []  # (seconds into the run, ttfa ms)
        self.runs: Counter[str] = Counter()
        self.unexpected: list[str] = []

    def _fail(self, scenario: str, what: str) -> None:
        self.unexpected.append(f"{scenario}: {what}")

    async def worker(self) -> None:
        scenarios = [self.llm, self.llm, self.cancel, self.vanish, self.bad_input, self.slow_reader]
        while time.monotonic() < self.deadline_s:
            scenario = self.random.choice(scenarios)
            name = scenario.__name__
            self.runs[name] += 1
            try:
                async with asyncio.timeout(60):
                    await scenario()
            except Exception as exc:  # any failure of a scenario is a finding, not a crash
                self._fail(name, f"{type(exc).__name__}: {exc}"[:300])

    async def llm(self) -> None:
        async with await connect(self.url) as conn:
            ctx = conn.context("llm")
            sender = asyncio.create_task(send_paced(ctx, tokens(PARAGRAPH, 30.0), []))
            sent_s = time.monotonic()
            first_s: float | None = None
            async for item in ctx:
                if first_s is None and not isinstance(item, Event):
                    first_s = time.monotonic()
                if isinstance(item, Event) and item.type == "error":
                    self._fail("llm", f"error {item.data.get('code')}")
            await sender
            if first_s is None:
                self._fail("llm", "no audio")
            else:
                self.ttfa.append((sent_s - self.started_s, 1000 * (first_s - sent_s)))

    async def _raw(self) -> Any:
        ws = await websockets.connect(self.url, max_size=None)
        ready = json.loads(await ws.recv())
        if ready.get("type") != "ready":
            self._fail("connect", f"first message {ready.get('type')}")
        return ws

    async def _until(self, ws: Any, kind: str) -> list[dict[str, Any]]:
        seen = []
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                continue
            data = json.loads(message)
            seen.append(data)
            if data["type"] == kind:
                return seen

    async def cancel(self) -> None:
        ws = await self._raw()
        try:
            await ws.send(json.dumps({"type": "text", "context": "c", "text": PARAGRAPH}))
            while not isinstance(await ws.recv(), bytes):
                pass
            await ws.send(json.dumps({"type": "cancel", "context": "c", "played_ms": 100}))
            # after `cancelled`, nothing of the context: a ping proves the rest was read
            await self._until(ws, "cancelled")
            await ws.send(json.dumps({"type": "ping", "id": 1}))
            while True:
                message = await ws.recv()
                if isinstance(message, bytes):
                    self._fail("cancel", "audio after cancelled")
                    continue
                data = json.loads(message)
                if data["type"] == "pong":
                    break
                if data.get("context") == "c":
                    self._fail("cancel", f"{data['type']} after cancelled")
        finally:
            await ws.close()

    async def vanish(self) -> None:
        ws = await self._raw()
        await ws.send(json.dumps({"type": "text", "text": PARAGRAPH}))
        await ws.send(json.dumps({"type": "end"}))
        while not isinstance(await ws.recv(), bytes):
            pass
        ws.transport.abort()  # gone mid-stream, no close frame

    async def bad_input(self) -> None:
        ws = await self._raw()
        try:
            for frame, code in BAD_FRAMES:
                await ws.send(frame)
                data = json.loads(await ws.recv())
                if (data.get("type"), data.get("code")) != ("error", code):
                    self._fail("bad_input", f"{frame!r:.40}: got {data}")
            await ws.send(json.dumps({"type": "text", "text": "Still here. "}))
            await ws.send(json.dumps({"type": "end"}))
            seen = await self._until(ws, "done")
            errors = [d for d in seen if d["type"] == "error"]
            if errors:
                self._fail("bad_input", f"errors after bad input: {errors}")
        finally:
            await ws.close()

    async def slow_reader(self) -> None:
        ws = await websockets.connect(self.url, max_size=None, max_queue=1)
        try:
            await ws.send(json.dumps({"type": "text", "text": PARAGRAPH}))
            await ws.send(json.dumps({"type": "end"}))
            await asyncio.sleep(2.0)  # reads nothing for a while
            await self._until(ws, "done")
        finally:
            await ws.close()


def _server_errors(log: Path) -> list[str]:
    """Lines of the server's log that say something broke (then the log is removed)."""
    lines = [
        line.strip()
        for line in log.read_text(errors="replace").splitlines()
        if "Traceback" in line or " ERROR " in line or line.startswith("ERROR")
    ]
    log.unlink(missing_ok=True)
    return lines


def _health(url: str) -> dict[str, Any]:
    http = url.replace("ws://", "http://").replace("/v1/stream", "/healthz")
    with urllib.request.urlopen(http, timeout=5) as response:
        health: dict[str, Any] = json.loads(response.read())
        return health


async def soak_async(duration_s: float, workers: int, seed: int = 1) -> dict[str, Any]:
    log = Path(tempfile.mkstemp(prefix="speakstream-soak-", suffix=".log")[1])
    samples: list[tuple[float, float]] = []
    async with server_with_pid(log_to=log) as (url, pid):
        soak = Soak(url, time.monotonic() + duration_s, seed)

        async def sample() -> None:
            while True:
                samples.append((round(time.monotonic() - soak.started_s, 1), rss_mb(pid)))
                await asyncio.sleep(2.0)

        sampler = asyncio.create_task(sample())
        await asyncio.gather(*(soak.worker() for _ in range(workers)))
        await asyncio.sleep(2.0)  # let the server close what the clients left
        health = await asyncio.to_thread(_health, url)
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    server_errors = await asyncio.to_thread(_server_errors, log)
    warm_s = duration_s * 0.2
    after_warmup = [rss for t, rss in samples if t >= warm_s] or [samples[-1][1]]
    growth_mb = max(after_warmup) - after_warmup[0]
    thirds = duration_s / 3
    unexpected = soak.unexpected + [f"server log: {line}" for line in server_errors[:20]]
    if health.get("connections") != 0:
        unexpected.append(f"connections after the run: {health.get('connections')}")
    return {
        "duration_s": duration_s,
        "workers": workers,
        "load_avg_at_start": os.getloadavg(),
        "scenarios": dict(soak.runs),
        "unexpected": unexpected,
        "rss_mb": {
            "samples": samples,
            "after_warmup_first": round(after_warmup[0], 1),
            "after_warmup_max": round(max(after_warmup), 1),
            "growth_after_warmup": round(growth_mb, 1),
            "limit_growth": RSS_GROWTH_LIMIT_MB,
        },
        "ttfa_ms": {
            "first_third": percentiles([ms for t, ms in soak.ttfa if t < thirds]),
            "last_third": percentiles([ms for t, ms in soak.ttfa if t >= 2 * thirds]),
        },
        "health_after": health,
        "ok": not unexpected and growth_mb <= RSS_GROWTH_LIMIT_MB,
    }


def run(*, quick: bool = False, output: Path | None = None) -> int:
    duration_s, workers = (60.0, 3) if quick else (600.0, 6)
    print(f"soak: {duration_s:.0f} s, {workers} workers, load {os.getloadavg()[0]:.2f}")
    results = asyncio.run(soak_async(duration_s, workers))
    rss = results["rss_mb"]
    print(f"scenarios: {results['scenarios']}")
    print(
        f"RSS after warm-up {rss['after_warmup_first']} MB, max {rss['after_warmup_max']} MB "
        f"(growth {rss['growth_after_warmup']} MB, limit {rss['limit_growth']:.0f})"
    )
    for third in ("first_third", "last_third"):
        print(f"time to first audio, {third.replace('_', ' ')}: {results['ttfa_ms'][third]}")
    print(f"unexpected: {len(results['unexpected'])}")
    for line in results["unexpected"][:20]:
        print(f"  {line}")
    write_results(results, output, "bench/results/soak.json")
    return 0 if results["ok"] else 1
