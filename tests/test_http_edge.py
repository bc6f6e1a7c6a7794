"""Sockets that never complete an HTTP request (issue 14, defect 7), over raw TCP.

Tests the guard of ``server/http_guard.py`` on a real server: a socket that sends no
complete request headers is answered 408 and closed after the header timeout; sockets
waiting for their headers are bounded by ``max_connections``; oversize headers get a 431
that reaches the client. All traffic goes to 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from tests.conftest import RunningServer, running_server

pytestmark = pytest.mark.timeout(90)

HEADER_TIMEOUT_S = 1.0
TIMEOUT_SETTINGS: dict[str, Any] = {"header_timeout_s": HEADER_TIMEOUT_S}
CLOSE_BOUND_S = 3 * HEADER_TIMEOUT_S + 10

UPGRADE_HEAD = (
    b"GET /v1/stream HTTP/1.1\r\n"
    b"Host: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


async def open_socket(server: RunningServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def read_until_closed(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    """Everything the server sends until it closes; fails if it has not closed by then."""
    async with asyncio.timeout(timeout_s):
        try:
            return await reader.read()
        except ConnectionResetError:
            return b""


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a", UPGRADE_HEAD],
    ids=["no-bytes", "partial-headers", "unfinished-upgrade"],
)
async def test_a_socket_without_complete_headers_is_closed_after_the_timeout(
    fake_engine_factory: Any, sent: bytes
) -> None:
    async with running_server(fake_engine_factory(), **TIMEOUT_SETTINGS) as srv:
        reader, writer = await open_socket(srv)
        writer.write(sent)
        await writer.drain()
        answer = await read_until_closed(reader, CLOSE_BOUND_S)
        assert answer.startswith(b"HTTP/1.1 408 ")
        writer.close()


async def test_a_slowloris_trickle_does_not_extend_the_deadline(fake_engine_factory: Any) -> None:
    async with running_server(fake_engine_factory(), **TIMEOUT_SETTINGS) as srv:
        reader, writer = await open_socket(srv)
        writer.write(b"GET /healthz HTTP/1.1\r\n")

        async def trickle() -> None:
            while True:
                writer.write(b"X-A: b\r\n")
                await writer.drain()
                await asyncio.sleep(0.1)  # a slowloris client's pace, not a wait for state

        task = asyncio.create_task(trickle())
        try:
            answer = await read_until_closed(reader, CLOSE_BOUND_S)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert answer.startswith(b"HTTP/1.1 408 ")
        writer.close()


async def test_sockets_waiting_for_headers_are_bounded(fake_engine_factory: Any) -> None:
    # With the header timeout far away, the sockets past max_connections are refused now.
    async with running_server(fake_engine_factory(), max_connections=2, **TIMEOUT_SETTINGS) as srv:
        waiting = [await open_socket(srv) for _ in range(2)]
        extra_reader, extra_writer = await open_socket(srv)
        answer = await read_until_closed(extra_reader, HEADER_TIMEOUT_S / 2)
        assert answer.startswith(b"HTTP/1.1 503 ")
        # a waiting socket that completes its request is served and frees its place
        reader, writer = waiting[0]
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert (await read_until_closed(reader, 10)).startswith(b"HTTP/1.1 200 ")
        late_reader, late_writer = await open_socket(srv)
        late_writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert (await read_until_closed(late_reader, 10)).startswith(b"HTTP/1.1 200 ")
        for _, w in (*waiting, (extra_reader, extra_writer), (late_reader, late_writer)):
            w.close()


async def test_a_64_kb_header_gets_a_431_that_reaches_the_client(fake_engine_factory: Any) -> None:
    # The header arrives in pieces, as over a real network: past h11's 16 KB limit the
    # server refuses it while the client is still sending the rest.
    async with running_server(fake_engine_factory()) as srv:
        reader, writer = await open_socket(srv)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        with contextlib.suppress(ConnectionError):
            for _ in range(64):
                writer.write(b"a" * 1024)
                await writer.drain()
            writer.write(b"\r\n\r\n")
            await writer.drain()
        answer = await read_until_closed(reader, 10)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
        writer.close()


async def test_a_websocket_upgrade_still_works(fake_engine_factory: Any) -> None:
    async with running_server(fake_engine_factory(), **TIMEOUT_SETTINGS) as srv:
        reader, writer = await open_socket(srv)
        writer.write(UPGRADE_HEAD + b"Sec-WebSocket-Version: 13\r\n\r\n")
        async with asyncio.timeout(10):
            status = await reader.readline()
        assert status.startswith(b"HTTP/1.1 101 ")
        writer.close()
