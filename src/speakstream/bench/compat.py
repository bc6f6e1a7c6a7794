"""Compatibility benchmark: ``speakstream bench compat``.

Time to first audio through each HTTP compatibility endpoint against the native protocol,
in the same run, on one server process (``bench.common.server_process``), 127.0.0.1 only.
Each round sends the same whole text once per path, in a rotating order, and times from
the request (native: the ``text`` and ``end`` messages) to the first audio byte, all in
16-bit PCM at 24 kHz so that only the protocol differs: native ``/v1/stream``, OpenAI
(``audio`` and ``sse``), ElevenLabs ``stream``, Deepgram ``/v1/speak``, Cartesia
``/tts/bytes``. The body is read to the end each time (the next round starts idle).
Reports p50/p95 per path and each path's p50 over the native p50. Results go to
``bench/results/compat.json``; ``--quick`` runs 3 rounds, the full run 30.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from speakstream.bench.common import percentiles, server_process, write_results
from speakstream.client import AudioChunk, connect

TEXTS = [
    "Sure, here is what I found about the weather tomorrow: mostly sunny, a light breeze.",
    "The meeting moved to Thursday at three, in the small room on the second floor.",
    "Your order has shipped, and it should arrive within two business days.",
]
PCM_24K = {"encoding": "pcm_s16le", "sample_rate_hz": 24000}


async def _native(ws_url: str, text: str) -> float:
    async with await connect(ws_url) as conn:
        ctx = await conn.open_context("bench", **PCM_24K)
        start = time.perf_counter()
        await ctx.send(text)
        await ctx.end()
        first_s: float | None = None
        async for item in ctx:
            if first_s is None and isinstance(item, AudioChunk):
                first_s = time.perf_counter() - start
            if not isinstance(item, AudioChunk) and item.type == "done":
                break
    if first_s is None:
        raise RuntimeError("the native endpoint sent no audio")
    return first_s * 1000


def _http_paths(base: str) -> dict[str, tuple[str, dict[str, Any], Callable[[str], Any]]]:
    """name -> (url, query, body for a text)."""
    return {
        "openai": (
            f"{base}/v1/audio/speech",
            {},
            lambda t: {"model": "tts-1", "voice": "alloy", "input": t, "response_format": "pcm"},
        ),
        "openai_sse": (
            f"{base}/v1/audio/speech",
            {},
            lambda t: {
                "model": "tts-1",
                "voice": "alloy",
                "input": t,
                "response_format": "pcm",
                "stream_format": "sse",
            },
        ),
        "elevenlabs": (
            f"{base}/v1/text-to-speech/bench/stream",
            {"output_format": "pcm_24000"},
            lambda t: {"text": t},
        ),
        "deepgram": (
            f"{base}/v1/speak",
            {"encoding": "linear16", "container": "none", "sample_rate": "24000"},
            lambda t: {"text": t},
        ),
        "cartesia": (
            f"{base}/tts/bytes",
            {},
            lambda t: {
                "model_id": "sonic-2",
                "transcript": t,
                "voice": {"mode": "id", "id": "bench"},
                "output_format": {
                    "container": "raw",
                    "encoding": "pcm_s16le",
                    "sample_rate": 24000,
                },
            },
        ),
    }


async def _http(client: Any, url: str, query: dict[str, Any], body: Any) -> float:
    start = time.perf_counter()
    first_s: float | None = None
    async with client.stream("POST", url, params=query, json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code}: {await response.aread()!r}")
        async for chunk in response.aiter_bytes():
            if first_s is None and chunk:
                first_s = time.perf_counter() - start
    if first_s is None:
        raise RuntimeError(f"{url} sent no audio")
    return first_s * 1000


def _http_runner(
    client: Any, url: str, query: dict[str, Any], make: Callable[[str], Any]
) -> Callable[[str], Awaitable[float]]:
    return lambda text: _http(client, url, query, make(text))


async def _measure(ws_url: str, rounds: int) -> dict[str, list[float]]:
    import httpx

    base = ws_url.replace("ws://", "http://").removesuffix("/v1/stream")
    paths = _http_paths(base)
    samples: dict[str, list[float]] = {name: [] for name in ("native", *paths)}
    async with httpx.AsyncClient(timeout=60) as client:
        runners: dict[str, Callable[[str], Awaitable[float]]] = {
            "native": lambda t: _native(ws_url, t)
        }
        for name, (url, query, make) in paths.items():
            runners[name] = _http_runner(client, url, query, make)
        names = list(runners)
        await runners["native"](TEXTS[0])  # warm-up, not counted
        for i in range(rounds):
            text = TEXTS[i % len(TEXTS)]
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                samples[name].append(await runners[name](text))
    return samples


def summarize(samples: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {
        name: dict(percentiles(values)) for name, values in samples.items()
    }
    native_p50 = table["native"]["p50"]
    for row in table.values():
        row["p50_over_native"] = round(row["p50"] / native_p50, 3) if native_p50 else None
    return table


def run(*, quick: bool, output: Path | None) -> int:
    rounds = 3 if quick else 30

    async def main() -> dict[str, list[float]]:
        async with server_process() as ws_url:
            return await _measure(ws_url, rounds)

    samples = asyncio.run(main())
    table = summarize(samples)
    results = {
        "benchmark": "compat",
        "quick": quick,
        "rounds": rounds,
        "format": "pcm_s16le at 24000 Hz",
        "ttfa_ms": table,
    }
    path = write_results(results, output, "bench/results/compat.json")
    print(f"time to first audio (ms), {rounds} rounds; results in {path}")
    for name, row in table.items():
        print(
            f"  {name:<11} p50 {row['p50']:7.1f}  p95 {row['p95']:7.1f}"
            f"  x{row['p50_over_native']} of native"
        )
    return 0
