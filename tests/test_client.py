from __future__ import annotations

import pytest

from speakstream.bench.common import free_port
from speakstream.client import ServerError, connect
from speakstream.engines import Engine
from tests.conftest import running_server


async def test_server_not_running_says_how_to_start_one() -> None:
    with pytest.raises(OSError, match="python -m speakstream serve"):
        await connect(f"ws://127.0.0.1:{free_port()}/v1/stream", open_timeout_s=5)


async def test_refused_connection_raises_the_server_error(piper_engine: Engine) -> None:
    async with (
        running_server(piper_engine, max_connections=1) as srv,
        await connect(srv.stream_url),
    ):
        with pytest.raises(ServerError) as info:
            await connect(srv.stream_url)
        assert info.value.code == "too_many_connections" and info.value.retryable


async def test_ping_pong_and_events_without_context(piper_engine: Engine) -> None:
    async with running_server(piper_engine) as srv, await connect(srv.stream_url) as conn:
        await conn.ping("p1")
        pong = await conn.next_event(10)
        assert pong.type == "pong" and pong.data["id"] == "p1"
