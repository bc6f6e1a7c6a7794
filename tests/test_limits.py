"""Limits (server.limits and their hooks): message rate per connection, characters per
key per minute, and ping/pong reaping of half-open peers. The older limits (frame size,
text per message, buffered text, contexts, connections, errors, header deadline, slow
readers) are tested in test_server, test_session, test_abuse, test_http_edge."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from speakstream.config import Settings
from speakstream.engines import Engine
from speakstream.server.limits import KeyCounts, SlidingCounter, TokenBucket
from tests.conftest import running_server, wait_for

pytestmark = pytest.mark.timeout(60)


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=3, now_s=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(100.4) is False  # 0.8 token
    assert bucket.take(100.5) is True  # 1 token after 0.5 s at 2/s
    assert bucket.take(110.0) and bucket.take(110.0) and bucket.take(110.0)  # capped at burst
    assert not bucket.take(110.0)


def test_sliding_counter_forgets_after_the_window() -> None:
    budget = SlidingCounter(limit=10, window_s=60.0)
    assert budget.add(6, 0.0)
    assert not budget.add(5, 30.0)  # 11 > 10: refused, not counted
    assert budget.add(4, 30.0)
    assert not budget.add(1, 59.9)
    assert budget.add(6, 60.0)  # the first 6 have left the window


def test_key_counts() -> None:
    counts = KeyCounts()
    assert counts.acquire("a", 2) and counts.acquire("a", 2)
    assert not counts.acquire("a", 2)
    counts.release("a")
    assert counts.get("a") == 1 and counts.acquire("a", 2)


async def _collect_until_closed(ws: Any) -> list[dict[str, Any]]:
    messages = []
    with pytest.raises(ConnectionClosed):
        while True:
            frame = await ws.recv()
            if isinstance(frame, str):
                messages.append(json.loads(frame))
    return messages


async def test_message_flood_gets_rate_limited_then_1008_and_others_lose_nothing(
    fake_engine_factory: Any,
) -> None:
    engine = fake_engine_factory()
    async with (
        running_server(engine, max_messages_per_s=1.0, message_burst=5) as srv,
        websockets.connect(srv.stream_url) as calm,
        websockets.connect(srv.stream_url) as flood,
    ):
        await calm.recv()
        await flood.recv()
        for i in range(10):
            await flood.send(json.dumps({"type": "ping", "id": i}))
        messages = await _collect_until_closed(flood)
        assert flood.close_code == 1008
        pongs = [m for m in messages if m["type"] == "pong"]
        errors = [m for m in messages if m["type"] == "error"]
        assert [p["id"] for p in pongs] == [0, 1, 2, 3, 4]  # the burst
        assert [e["code"] for e in errors] == ["rate_limited"]
        # the other connection is untouched
        text = "The calm client speaks its whole sentence."
        await calm.send(json.dumps({"type": "text", "context": "a", "text": text}))
        await calm.send(json.dumps({"type": "end", "context": "a"}))
        spoken = ""
        while True:
            frame = await calm.recv()
            if isinstance(frame, bytes):
                continue
            message = json.loads(frame)
            assert message["type"] != "error", message
            if message["type"] == "segment":
                spoken += message["text"]
            if message["type"] == "done":
                break
        assert spoken == text


async def test_characters_per_key_per_minute(piper_engine: Engine) -> None:
    settings = Settings(log_level="warning", api_keys="alice:k1", max_chars_per_minute_per_key=30)
    async with running_server(piper_engine, settings) as srv:
        headers = {"Authorization": "Bearer k1"}
        async with websockets.connect(srv.stream_url, additional_headers=headers) as ws:
            await ws.recv()
            await ws.send(
                json.dumps({"type": "text", "context": "a", "text": "Twenty characters ok"})
            )
            # 20 + 11 > 30 within the minute
            await ws.send(json.dumps({"type": "text", "context": "b", "text": " eleven more"}))
            messages = await _collect_until_closed(ws)
            assert ws.close_code == 1008
            assert [m["code"] for m in messages if m["type"] == "error"] == ["rate_limited"]
        # the budget is the key's, across connections
        async with websockets.connect(srv.stream_url, additional_headers=headers) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "text", "context": "c", "text": "a whole sentence."}))
            messages = await _collect_until_closed(ws)
            assert ws.close_code == 1008


async def test_a_half_open_peer_is_reaped_by_the_ping_timeout(piper_engine: Engine) -> None:
    async with running_server(piper_engine, ws_ping_interval_s=0.2, ws_ping_timeout_s=0.2) as srv:
        runtime = srv.runtime
        # A well-behaved client answers pings (websockets does) and stays.
        async with websockets.connect(srv.stream_url) as alive:
            await alive.recv()
            # A peer that completed the handshake and then went silent: never reads, never pongs.
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                (
                    f"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
            await wait_for(lambda: runtime.connections == 2)
            await wait_for(lambda: runtime.connections == 1, timeout_s=30)  # reaped
            writer.close()
            # the live one is still served
            await alive.send(json.dumps({"type": "ping", "id": "still-here"}))
            assert json.loads(await alive.recv()) == {"type": "pong", "id": "still-here"}
