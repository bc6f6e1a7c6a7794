"""End to end: a real uvicorn server with the real Piper engine, real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
import websockets

from speakstream.client import AudioChunk, Connection, ContextResult, Event, connect
from speakstream.engines import Engine
from speakstream.protocol.frames import unpack_audio_frame
from tests.conftest import RunningServer, running_server, wait_for

pytestmark = pytest.mark.timeout(120)

SENTENCE = "Hello there, this is speakstream. It speaks while you type."


def check_result(result: ContextResult, text: str, sample_rate_hz: int = 22050) -> None:
    """Audio of one context: ordered, gap-free, covering exactly the text sent."""
    assert not result.errors, result.errors
    frames = [c.frame for c in result.chunks]
    assert frames == list(range(len(frames)))
    segments = [e.data for e in result.events if e.type == "segment"]
    assert "".join(s["text"] for s in segments) == text
    assert [s["seq"] for s in segments] == list(range(len(segments)))
    assert all(s["first_chunk_ms"] > 0 and s["queue_ms"] >= 0 for s in segments)
    seq_of_chunks = [c.segment for c in result.chunks]
    assert seq_of_chunks == sorted(seq_of_chunks)
    assert len(result.audio) % 2 == 0
    done = result.first("done")
    assert done is not None
    audio_ms = 1000 * len(result.audio) / 2 / sample_rate_hz
    assert audio_ms == pytest.approx(done.data["metrics"]["audio_ms"], abs=1)
    assert audio_ms > 300
    samples = np.frombuffer(result.audio, dtype="<i2")
    assert np.abs(samples).max() > 1000, "real speech, not silence"


async def speak(conn: Connection, context: str, text: str, **start: Any) -> ContextResult:
    ctx = await conn.open_context(context, **start) if start else conn.context(context)
    await ctx.send(text)
    await ctx.end()
    return await ctx.collect()


async def wait_until_idle(server: RunningServer, baseline_tasks: int | None = None) -> None:
    runtime = server.runtime
    await wait_for(
        lambda: (
            runtime.connections == 0
            and runtime.pool.running_jobs == 0
            and runtime.pool.waiting_jobs == 0
            and runtime.active_streams == 0
            and (baseline_tasks is None or len(asyncio.all_tasks()) <= baseline_tasks)
        )
    )


async def test_one_context(piper_server: RunningServer) -> None:
    async with await connect(piper_server.stream_url) as conn:
        assert conn.ready["capabilities"]["engine"] == "piper"
        assert conn.ready["settings"]["voice"] == "en_US-joe-medium"
        result = await speak(conn, "default", SENTENCE)
    check_result(result, SENTENCE)
    metrics = result.first("done").data["metrics"]  # type: ignore[union-attr]
    assert metrics["characters"] == len(SENTENCE)
    assert metrics["ttfa_ms"] > 0 and metrics["rtf"] > 0


async def test_several_contexts_share_one_socket(piper_server: RunningServer) -> None:
    texts = {
        "a": "The first context talks about the weather today.",
        "b": "The second one reads a short story, slowly.",
        "c": "And a third says goodbye.",
    }
    async with await connect(piper_server.stream_url) as conn:
        contexts = {cid: conn.context(cid) for cid in texts}
        words = {cid: text.split(" ") for cid, text in texts.items()}
        # interleave the three texts word by word on the same socket
        for i in range(max(len(w) for w in words.values())):
            for cid, ws in words.items():
                if i < len(ws):
                    await contexts[cid].send(ws[i] + ("" if i == len(ws) - 1 else " "))
        for ctx in contexts.values():
            await ctx.end()
        results = await asyncio.gather(*(ctx.collect() for ctx in contexts.values()))
    streams = set()
    for (cid, text), result in zip(texts.items(), results, strict=True):
        check_result(result, text)
        assert {c.context for c in result.chunks} == {cid}
        streams |= {c.stream for c in result.chunks}
    assert len(streams) == 3


async def test_eight_sockets_at_once(piper_server: RunningServer) -> None:
    async def one(i: int) -> ContextResult:
        async with await connect(piper_server.stream_url) as conn:
            return await speak(conn, "default", f"Client number {i} says hello.")

    results = await asyncio.gather(*(one(i) for i in range(8)))
    for i, result in enumerate(results):
        check_result(result, f"Client number {i} says hello.")
    await wait_until_idle(piper_server)


async def test_text_streamed_one_character_at_a_time(piper_server: RunningServer) -> None:
    async with await connect(piper_server.stream_url) as conn:
        ctx = conn.context("typed")
        for ch in SENTENCE:
            await ctx.send(ch)
        await ctx.end()
        result = await ctx.collect()
    check_result(result, SENTENCE)
    segments = [e.data["text"] for e in result.events if e.type == "segment"]
    assert segments[0] == "Hello "  # preemptive first segment at the first word boundary
    assert len(segments) >= 3


async def test_flush_is_answered_after_its_audio(piper_server: RunningServer) -> None:
    async with await connect(piper_server.stream_url) as conn:
        ctx = conn.context("f")
        await ctx.send("Hi")
        await ctx.flush()
        items: list[AudioChunk | Event] = []
        async for item in ctx:
            items.append(item)
            if isinstance(item, Event) and item.type == "flushed":
                break
        assert any(isinstance(i, AudioChunk) for i in items)
        assert isinstance(items[-1], Event) and items[-1].type == "flushed"
        await ctx.end()
        done = [i async for i in ctx]
        assert isinstance(done[-1], Event) and done[-1].type == "done"


async def test_cancel_mid_utterance_stops_audio_at_once(piper_server: RunningServer) -> None:
    long_text = " ".join(
        ["This is a long paragraph that keeps going so there is plenty to cancel."] * 6
    )
    async with websockets.connect(piper_server.stream_url, max_size=None) as ws:
        json.loads(await ws.recv())  # ready
        await ws.send(json.dumps({"type": "text", "context": "a", "text": long_text}))
        await ws.send(json.dumps({"type": "end", "context": "a"}))
        # wait for the first audio frame of the context, then barge in
        while not isinstance(await ws.recv(), bytes):
            pass
        await ws.send(json.dumps({"type": "cancel", "context": "a"}))
        cancelled = False
        audio_after_cancel = 0
        events_after: list[str] = []
        async with asyncio.timeout(20):
            while True:
                message = await ws.recv()
                if isinstance(message, bytes):
                    if cancelled:
                        audio_after_cancel += 1
                    continue
                data = json.loads(message)
                if data["type"] == "cancelled":
                    cancelled = True
                    # let any in-flight synthesis finish, then use a ping as a barrier
                    await wait_until_idle_jobs(piper_server)
                    await ws.send(json.dumps({"type": "ping", "id": "barrier"}))
                elif cancelled:
                    events_after.append(data["type"])
                    if data["type"] == "pong":
                        break
        assert cancelled
        assert audio_after_cancel == 0
        assert events_after == ["pong"]  # no segment, done or anything else of "a"


async def wait_until_idle_jobs(server: RunningServer) -> None:
    pool = server.runtime.pool
    await wait_for(lambda: pool.running_jobs == 0 and pool.waiting_jobs == 0)


async def test_client_disconnect_mid_synthesis_leaves_nothing_behind(
    piper_server: RunningServer,
) -> None:
    await wait_until_idle(piper_server)
    baseline_tasks = len(asyncio.all_tasks())
    for _ in range(3):
        ws = await websockets.connect(piper_server.stream_url)
        await ws.recv()
        await ws.send(json.dumps({"type": "text", "text": "A sentence to synthesize. " * 40}))
        await ws.send(json.dumps({"type": "end"}))
        while not isinstance(await ws.recv(), bytes):
            pass
        assert piper_server.runtime.connections == 1
        ws.transport.abort()  # vanish without a closing handshake
        await ws.wait_closed()
    await wait_until_idle(piper_server, baseline_tasks)
    assert piper_server.runtime.connections == 0


async def raw(url: str) -> websockets.ClientConnection:
    ws = await websockets.connect(url, max_size=None)
    assert json.loads(await ws.recv())["type"] == "ready"
    return ws


async def next_json(ws: websockets.ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while True:
            message = await ws.recv()
            if isinstance(message, str):
                data: dict[str, Any] = json.loads(message)
                return data


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ('{"type": "text", "text": ', "invalid_json"),
        ('{"type": "shout"}', "unknown_type"),
        ('{"type": "text"}', "invalid_message"),
        ('{"type": "text", "text": ["a"]}', "invalid_message"),
        ('{"type": "start", "voice": "en_GB-nobody"}', "unknown_voice"),
        ('{"type": "start", "encoding": "aiff"}', "unsupported_encoding"),
        ('{"type": "start", "sample_rate_hz": 11025}', "unsupported_sample_rate"),
        (
            '{"type": "start", "encoding": "opus", "sample_rate_hz": 22050}',
            "unsupported_sample_rate",
        ),
        ('{"type": "flush", "context": "ghost"}', "unknown_context"),
        (b"\x00\x01binary", "binary_not_supported"),
    ],
)
async def test_bad_input_gets_an_error_and_the_socket_stays_usable(
    piper_server: RunningServer, payload: str | bytes, code: str
) -> None:
    ws = await raw(piper_server.stream_url)
    try:
        await ws.send(json.dumps({"type": "text", "context": "keep", "text": "Still "}))
        await ws.send(payload)
        error = await next_json(ws)
        assert error["type"] == "error" and error["code"] == code
        assert error["message"] and error["retryable"] is False
        # nothing else was lost: the earlier context still completes
        await ws.send(json.dumps({"type": "text", "context": "keep", "text": "here."}))
        await ws.send(json.dumps({"type": "end", "context": "keep"}))
        kinds = []
        while "done" not in kinds:
            kinds.append((await next_json(ws))["type"])
        assert "error" not in kinds
    finally:
        await ws.close()


async def test_text_too_long_and_too_many_contexts(piper_engine: Engine) -> None:
    async with running_server(piper_engine, max_text_chars=50, max_contexts=2) as srv:
        ws = await raw(srv.stream_url)
        await ws.send(json.dumps({"type": "text", "text": "x" * 51}))
        assert (await next_json(ws))["code"] == "text_too_long"
        await ws.send(json.dumps({"type": "start", "context": "a"}))
        await ws.send(json.dumps({"type": "start", "context": "b"}))
        await ws.send(json.dumps({"type": "start", "context": "c"}))
        error = await next_json(ws)
        assert (error["code"], error["context"]) == ("too_many_contexts", "c")
        await ws.send(json.dumps({"type": "ping", "id": 1}))
        assert await next_json(ws) == {"type": "pong", "id": 1}
        await ws.close()


async def messages_until_closed(ws: websockets.ClientConnection) -> list[str | bytes]:
    """Everything the server sends until it closes the socket (which it must, in 10 s)."""
    received: list[str | bytes] = []
    with pytest.raises(websockets.ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                received.append(await ws.recv())
    return received


async def test_invalid_utf8_closes_with_1007(piper_server: RunningServer) -> None:
    ws = await raw(piper_server.stream_url)
    await ws.send(b'{"type": "text", "text": "\xff\xfe"}', text=True)
    await messages_until_closed(ws)
    assert ws.close_code == 1007
    await wait_until_idle(piper_server)


async def test_oversize_frame_closes_with_1009(piper_engine: Engine) -> None:
    async with running_server(piper_engine, max_message_bytes=4096) as srv:
        ws = await raw(srv.stream_url)
        await ws.send(json.dumps({"type": "text", "text": "y" * 5000}))
        await messages_until_closed(ws)
        assert ws.close_code == 1009
        await wait_until_idle(srv)


async def test_too_many_connections_closes_with_1013(piper_engine: Engine) -> None:
    async with running_server(piper_engine, max_connections=2) as srv:
        first = await raw(srv.stream_url)
        second = await raw(srv.stream_url)
        third = await websockets.connect(srv.stream_url)
        error = json.loads(await third.recv())
        assert error["code"] == "too_many_connections" and error["retryable"] is True
        with pytest.raises(websockets.ConnectionClosed):
            await third.recv()
        assert third.close_code == 1013
        await first.close()
        await wait_for(lambda: srv.runtime.connections == 1)
        fourth = await raw(srv.stream_url)  # a slot is free again
        for ws in (second, fourth):
            await ws.close()


async def test_too_many_errors_close_with_1008(piper_engine: Engine) -> None:
    async with running_server(piper_engine, max_errors=3) as srv:
        ws = await raw(srv.stream_url)
        for _ in range(4):
            await ws.send("nonsense")
        codes = [json.loads(m)["code"] for m in await messages_until_closed(ws)]
        assert codes == ["invalid_json"] * 4 + ["too_many_errors"]
        assert ws.close_code == 1008


async def test_sequential_mode_speaks_the_same_segments(piper_engine: Engine) -> None:
    async with (
        running_server(piper_engine, bidirectional_streaming_enabled=False) as srv,
        await connect(srv.stream_url) as conn,
    ):
        result = await speak(conn, "default", SENTENCE)
    check_result(result, SENTENCE)


async def test_frames_carry_stream_segment_and_sequence(piper_server: RunningServer) -> None:
    ws = await raw(piper_server.stream_url)
    await ws.send(json.dumps({"type": "text", "context": "z", "text": "Hello world, again."}))
    await ws.send(json.dumps({"type": "end", "context": "z"}))
    stream = None
    frames = []
    async with asyncio.timeout(20):
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                header, payload = unpack_audio_frame(message)
                assert header.stream == stream, "a segment event names the stream before its audio"
                frames.append(header.frame)
                assert len(payload) % 2 == 0
                continue
            data = json.loads(message)
            if data["type"] == "segment":
                stream = data["stream"]
            if data["type"] == "done":
                break
    assert frames == list(range(len(frames)))
    await ws.close()


async def test_health_endpoint(piper_server: RunningServer) -> None:
    import urllib.request

    url = f"http://127.0.0.1:{piper_server.port}/healthz"
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
    health = json.loads(body)
    assert health["status"] == "ok" and health["engine"] == "piper"
