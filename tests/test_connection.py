"""The connection driver in memory: a scripted socket and the scripted engine, no uvicorn.

These check what the driver itself decides (when to send, when to stop reading, when to
give up on a client) deterministically: the engine is gated by the test, and the socket
records or holds what the server sends.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import pytest

from speakstream.audio.pcm import PcmChunk
from speakstream.config import Settings
from speakstream.engines import Engine, EngineCapabilities, SynthesisOptions
from speakstream.protocol.frames import unpack_audio_frame
from speakstream.server.connection import Connection
from speakstream.server.runtime import Runtime
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(60)


class MemorySocket:
    """Client frames are put in ``incoming``; what the server sends lands in ``sent``.
    While ``writable`` is clear, sends wait (a client that does not read)."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[str | bytes] = []
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed_with: int | None = None
        self.fail_sends_after: int | None = None  # raise on sends past this many

    def client_sends(self, **message: Any) -> None:
        self.incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})

    def client_leaves(self) -> None:
        self.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})

    async def receive(self) -> Mapping[str, Any]:
        return await self.incoming.get()

    async def _send(self, data: str | bytes) -> None:
        await self.writable.wait()
        if self.fail_sends_after is not None and len(self.sent) >= self.fail_sends_after:
            raise OSError("connection reset by peer")
        self.sent.append(data)

    async def send_text(self, data: str) -> None:
        await self._send(data)

    async def send_bytes(self, data: bytes) -> None:
        await self._send(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self.writable.wait()
        self.closed_with = code

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m) for m in self.sent if isinstance(m, str)]

    def types(self) -> list[str]:
        return [e["type"] for e in self.events()]

    def frames(self) -> list[int]:
        return [unpack_audio_frame(m)[0].frame for m in self.sent if isinstance(m, bytes)]


class GatedEngine:
    """The scripted fake engine, whose last chunk of each text waits for ``gate``."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.gate = threading.Event()
        self.reached = threading.Event()  # a synthesis is waiting at the gate

    @property
    def capabilities(self) -> EngineCapabilities:
        return self.inner.capabilities

    def synthesize(self, text: str, voice: str, options: SynthesisOptions) -> Iterator[PcmChunk]:
        chunks = list(self.inner.synthesize(text, voice, options))
        yield from chunks[:-1]
        self.reached.set()
        self.gate.wait(30)
        yield from chunks[-1:]

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def fake(fake_engine_factory: Any) -> Engine:
    engine: Engine = fake_engine_factory(ms_per_char=50, chunk_ms=50)
    return engine


async def serving(
    engine: Engine, **changes: Any
) -> AsyncIterator[tuple[Connection, MemorySocket, asyncio.Task[None]]]:
    runtime = Runtime.build(Settings(engine="fake", log_level="warning").replace(**changes), engine)
    sock = MemorySocket()
    conn = Connection(sock, runtime)
    task = asyncio.create_task(conn.serve())
    try:
        yield conn, sock, task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        runtime.close()


def session_for(changes: dict[str, Any], engine: Engine) -> Any:
    import contextlib

    return contextlib.asynccontextmanager(serving)(engine, **changes)


async def test_text_then_end_then_leave(fake: Engine) -> None:
    async with session_for({}, fake) as (conn, sock, task):
        sock.client_sends(type="text", text="Hello there, general. ")
        sock.client_sends(type="end")
        await wait_for(lambda: "done" in sock.types())
        assert sock.types()[0] == "ready" and sock.types()[1] == "segment"
        frames = sock.frames()
        assert frames == list(range(len(frames))) and frames
        sock.client_leaves()
        await asyncio.wait_for(task, 10)
        assert conn.runtime.active_streams == 0 and not conn.jobs
        await wait_for(lambda: conn.runtime.pool.running_jobs == 0)


@pytest.mark.parametrize("immediate_send", [True, False])
async def test_immediate_send_decides_whether_audio_leaves_before_its_segment_ends(
    fake: Engine, immediate_send: bool
) -> None:
    engine = GatedEngine(fake)
    async with session_for({"immediate_send": immediate_send, "min_text_length": 20}, engine) as (
        conn,
        sock,
        _,
    ):
        sock.client_sends(type="text", text="abcdefghijklmnopqrst ")
        await wait_for(engine.reached.is_set)
        # every chunk but the last has reached the session (it holds them, or sent them)
        ctx = conn.session.context("default")
        await wait_for(lambda: ctx is not None and ctx.metrics.audio_ms >= 950)
        await asyncio.sleep(0)  # let the send loop run once more
        await wait_for(lambda: len(conn.outbox) == 0)
        if immediate_send:
            assert len(sock.frames()) == 19  # sent as they came
        else:
            assert sock.frames() == []  # nothing before the segment is whole
        engine.gate.set()
        sock.client_sends(type="end")
        await wait_for(lambda: "done" in sock.types())
        assert len(sock.frames()) == 20


async def test_a_client_that_does_not_read_stops_being_read_and_bounds_the_queue(
    fake: Engine,
) -> None:
    async with session_for({"queue_size": 4}, fake) as (conn, sock, _):
        await wait_for(lambda: sock.types() == ["ready"])
        sock.writable.clear()  # the client stops reading
        for i in range(6):
            sock.client_sends(type="text", context=f"c{i}", text="One two three four five. ")
            sock.client_sends(type="end", context=f"c{i}")
        for i in range(40):  # answers jump the audio, in a lane of their own, also bounded
            sock.client_sends(type="ping", id=i)
        await wait_for(lambda: conn.runtime.backpressure_waits > 0)
        await wait_for(lambda: not conn.jobs or len(conn.outbox) >= 4)
        await asyncio.sleep(0.2)  # the server now waits; nothing it does may grow the queue
        # each lane holds at most its size plus one session step's outputs
        assert len(conn.outbox) <= 4 + 16 + 2 * 8
        assert not sock.incoming.empty(), "the server stopped reading the client"
        sock.writable.set()
        await wait_for(lambda: sock.types().count("done") == 6)
        assert sock.types().count("pong") == 40


async def test_a_broken_socket_ends_the_connection_even_while_it_waits_for_room(
    fake: Engine,
) -> None:
    # Regression (issue 14, defect 1): once the send loop died, the receive loop waited
    # for outbox room forever and the connection slot leaked.
    async with session_for({"queue_size": 1}, fake) as (conn, sock, task):
        sock.fail_sends_after = 2
        for i in range(20):
            sock.client_sends(type="ping", id=i)
        sock.client_sends(type="text", text="Hello there, general. ")
        await asyncio.wait_for(task, 10)
        assert conn.runtime.active_streams == 0 and not conn.jobs


async def test_a_client_that_reads_nothing_is_closed_after_the_write_timeout(
    fake: Engine,
) -> None:
    async with session_for({"write_timeout_s": 0.2}, fake) as (conn, sock, task):
        await wait_for(lambda: sock.types() == ["ready"])
        sock.writable.clear()
        sock.client_sends(type="text", text="Hello there, general. ")
        sock.client_sends(type="end")
        await asyncio.wait_for(task, 10)  # gave up on the client by itself
        assert conn.close_requested is not None
        assert conn.close_requested.code == 1008
        assert conn.runtime.active_streams == 0


async def test_sequential_mode_answers_one_message_before_reading_the_next(fake: Engine) -> None:
    async with session_for({"bidirectional_streaming_enabled": False}, fake) as (_, sock, _t):
        sock.client_sends(type="text", text="Hello there. ")
        await wait_for(lambda: len(sock.frames()) > 0)
        assert sock.incoming.empty()
        sock.client_sends(type="end")
        await wait_for(lambda: "done" in sock.types())


async def test_a_cancelled_context_leaves_nothing_of_itself_in_the_connection(
    fake: Engine,
) -> None:
    # Regression: the connection's voice of each context (for metrics and the log) was
    # dropped at ``done`` only, so a long-lived client cancelling each turn (barge-in,
    # a new context id per turn) grew it by one entry a turn for as long as it stayed.
    async with session_for({}, fake) as (conn, sock, _):
        for turn in range(5):
            sock.client_sends(type="text", context=f"turn-{turn}", text="Hello there, you. ")
            await wait_for(lambda turn=turn: f"turn-{turn}" in conn.voices)
            sock.client_sends(type="cancel", context=f"turn-{turn}")
            await wait_for(lambda turn=turn: sock.types().count("cancelled") == turn + 1)
        assert conn.voices == {} and conn.session.active_contexts == 0


async def test_a_context_left_open_by_a_client_that_goes_is_counted_and_logged(
    fake: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # Its listener heard its audio (and any stalls) even though no done or cancelled came.
    import logging

    from tests.test_metrics import samples, value

    async with session_for({}, fake) as (conn, sock, task):
        with caplog.at_level(logging.INFO, logger="speakstream.access"):
            sock.client_sends(type="text", context="hung-up", text="Hello there, you. And on ")
            await wait_for(lambda: len(sock.frames()) > 0)
            sock.client_leaves()
            await asyncio.wait_for(task, 10)
        assert conn.voices == {}
        metrics = conn.runtime.metrics.render().decode()
    [line] = [r for r in caplog.records if getattr(r, "fields", {}).get("context") == "hung-up"]
    assert line.fields["event"] == "context unfinished"  # type: ignore[attr-defined]
    assert line.fields["first_audio_ms"] is not None  # type: ignore[attr-defined]
    labels = {"endpoint": "other", "engine": "fake", "voice": fake.capabilities.default_voice}
    ttfa = value(samples(metrics), "speakstream_time_to_first_audio_seconds_count", **labels)
    assert ttfa == 1
