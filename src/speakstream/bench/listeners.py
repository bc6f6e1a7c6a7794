"""Benchmark clients that record what a listener hears, one per protocol.

Each sends one text and returns ``Heard``: when its first text went out and, for every
audio chunk, its arrival time and duration (all ``time.perf_counter()``), so that time to
first audio and a real-time listener's underruns are computed the same way for every
server. ``pace_tokens_per_s`` (where the protocol takes text in pieces) sends the text as
word tokens at that rate, like an LLM; ``None`` sends it in one message.

* ``native(url, name, text, ...)``: our ``/v1/stream``, one context, 16-bit PCM; a
  ``busy`` refusal (or a refused connection) is recorded as ``refused``.
* ``wyoming(port, text, streaming=..., ...)``: a Wyoming TCP server (ours or
  wyoming-piper) with the ``wyoming`` package's client: ``synthesize`` with the whole
  text, or ``synthesize-start`` / ``synthesize-chunk``… / ``synthesize`` (the whole text,
  as Home Assistant sends it for servers that do not stream) / ``synthesize-stop``.
* ``piper_http(port, text)``: ``POST /synthesize`` of ``piper.http_server`` (the whole
  text; a WAV body that comes when the whole text is synthesized).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

from speakstream.client import (
    AudioChunk,
    ConnectError,
    ConnectionClosed,
    Event,
    ServerError,
    connect,
)
from speakstream.client.pacing import Piece, send_paced, tokens

_WAV_HEADER_BYTES = 44  # Python's wave module, which piper.http_server writes with


@dataclass(slots=True)
class Heard:
    """What one listener got: first text sent, audio chunks (arrival s, duration ms)."""

    first_sent_s: float | None = None
    chunks: list[tuple[float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refused: bool = False
    server_stall_ms: float | None = None  # what speakstream's ``done`` says (others: None)
    server_segments: int | None = None  # the same: the segments its text was cut into

    @property
    def ttfa_ms(self) -> float | None:
        if not self.chunks or self.first_sent_s is None:
            return None
        return 1000.0 * (self.chunks[0][0] - self.first_sent_s)

    @property
    def audio_s(self) -> float:
        return sum(duration_ms for _, duration_ms in self.chunks) / 1000.0


def _pieces(text: str, pace_tokens_per_s: float | None) -> list[Piece]:
    return tokens(text, pace_tokens_per_s) if pace_tokens_per_s else [(text, 0.0)]


async def native(
    url: str, name: str, text: str, *, pace_tokens_per_s: float | None = None
) -> Heard:
    heard = Heard()
    try:
        await _native(url, name, text, pace_tokens_per_s, heard)
    except ServerError as exc:  # the connection refused at once (busy: 1013)
        heard.errors.append(exc.code)
        heard.refused = exc.code == "busy" and not heard.chunks
    except (ConnectionClosed, ConnectError) as exc:  # refused (busy) or dropped
        heard.errors.append(f"closed: {exc}"[:80])
        heard.refused = not heard.chunks
    return heard


async def _native(
    url: str, name: str, text: str, pace_tokens_per_s: float | None, heard: Heard
) -> None:
    async with await connect(url) as conn:
        rate_hz = int(conn.ready["settings"]["sample_rate_hz"])
        ctx = await conn.open_context(name, encoding="pcm_s16le")
        sent_at: list[tuple[int, float]] = []
        sender = asyncio.create_task(send_paced(ctx, _pieces(text, pace_tokens_per_s), sent_at))
        async for item in ctx:
            if isinstance(item, AudioChunk):
                heard.chunks.append((item.received_s, 1000.0 * len(item.data) / 2 / rate_hz))
            elif isinstance(item, Event) and item.type == "done":
                heard.server_stall_ms = float(item.data["metrics"]["stall_ms"])
                heard.server_segments = int(item.data["metrics"]["segments"])
            elif isinstance(item, Event) and item.type == "error":
                heard.errors.append(str(item.data.get("code")))
                if item.data.get("code") == "busy":  # refused: its text goes nowhere
                    sender.cancel()
                    break
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        heard.first_sent_s = sent_at[0][1] if sent_at else None
    heard.refused = "busy" in heard.errors and not heard.chunks


async def wyoming(
    port: int, text: str, *, streaming: bool, pace_tokens_per_s: float | None = None
) -> Heard:
    from wyoming.audio import AudioChunk as WyomingChunk
    from wyoming.client import AsyncTcpClient
    from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

    heard = Heard()
    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()

    async def send() -> None:
        if not streaming:
            heard.first_sent_s = time.perf_counter()
            await client.write_event(Synthesize(text=text).event())
            return
        await client.write_event(SynthesizeStart().event())
        next_at_s = time.perf_counter()
        for piece, gap_s in _pieces(text, pace_tokens_per_s):
            delay_s = next_at_s - time.perf_counter()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            if heard.first_sent_s is None:
                heard.first_sent_s = time.perf_counter()
            await client.write_event(SynthesizeChunk(text=piece).event())
            next_at_s += gap_s
        await client.write_event(Synthesize(text=text).event())
        await client.write_event(SynthesizeStop().event())

    last = "synthesize-stopped" if streaming else "audio-stop"
    sender = asyncio.create_task(send())
    try:
        while (event := await client.read_event()) is not None:
            if WyomingChunk.is_type(event.type):
                chunk = WyomingChunk.from_event(event)
                bytes_per_s = chunk.rate * chunk.width * chunk.channels
                heard.chunks.append((time.perf_counter(), 1000.0 * len(chunk.audio) / bytes_per_s))
            elif event.type == "error":
                heard.errors.append(str((event.data or {}).get("code")))
                break
            elif event.type == last:
                break
        else:
            heard.errors.append("closed before the end")
        if not heard.errors:
            await sender
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await sender  # its error, if any, is the read loop's too
        await client.disconnect()
    return heard


async def piper_http(port: int, text: str) -> Heard:
    heard = Heard()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        body = json.dumps({"text": text}).encode()
        heard.first_sent_s = time.perf_counter()
        writer.write(
            b"POST /synthesize HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        status = (await reader.readline()).split()
        await reader.readuntil(b"\r\n\r\n")
        if len(status) < 2 or status[1] != b"200":
            heard.errors.append(f"HTTP {b' '.join(status[1:2]).decode()}")
            return heard
        header = b""
        rate_hz = 0
        while data := await reader.read(65536):
            arrival_s = time.perf_counter()
            if len(header) < _WAV_HEADER_BYTES:
                take = _WAV_HEADER_BYTES - len(header)
                header, data = header + data[:take], data[take:]
                if len(header) == _WAV_HEADER_BYTES:
                    rate_hz = int.from_bytes(header[24:28], "little")
            if data and rate_hz:
                heard.chunks.append((arrival_s, 1000.0 * len(data) / 2 / rate_hz))
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return heard
