"""Abusive clients against a real server (issue 14): leaks, stalls, surrogates, floods.

Every test talks to a real server on 127.0.0.1 over real sockets and stops by itself.
The scripted fake engine makes the audio (these are fault tests, not audio tests), except
where the defect lives in Piper's handling of the text. Each test failed on the code
before the fix of the defect it names (issue 14, defects 1-3, 5, 6, 8).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import socket
import struct
import termios
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from speakstream.engines import Engine
from tests.conftest import RunningServer, running_server, wait_for

pytestmark = pytest.mark.timeout(120)

LONE_SURROGATE = "\\ud800"  # as written in JSON: an escape that decodes to an unpaired surrogate
FLOOD_CONTEXT_AUDIO_S = 200  # far more than every buffer between the server and a client


async def ready_client(server: RunningServer, **options: Any) -> websockets.ClientConnection:
    """A connected client that was admitted (its first message is ``ready``)."""
    ws = await websockets.connect(server.stream_url, max_size=None, **options)
    first = json.loads(await ws.recv())
    assert first["type"] == "ready", f"not admitted: {first}"
    return ws


async def next_json(ws: websockets.ClientConnection, timeout_s: float = 10.0) -> dict[str, Any]:
    """The next JSON message (binary frames skipped); fails if none comes in ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while True:
            message = await ws.recv()
            if isinstance(message, str):
                data: dict[str, Any] = json.loads(message)
                return data


async def assert_usable(ws: websockets.ClientConnection) -> None:
    await ws.send(json.dumps({"type": "ping", "id": 7}))
    assert await next_json(ws) == {"type": "pong", "id": 7}


def unread_bytes(ws: websockets.ClientConnection) -> int:
    """Bytes the kernel holds for this client that it has not read yet."""
    sock = ws.transport.get_extra_info("socket")
    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    count: int = struct.unpack("i", raw)[0]
    return count


async def flooded_client(server: RunningServer) -> websockets.ClientConnection:
    """A client that asks for minutes of audio and reads none of it.

    Its receive buffer is small and it stops reading after one message, so the server's
    writes block as soon as its own buffers are full. Returns once the client's kernel
    buffer holds unread audio, i.e. the server is writing into a socket nobody reads.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    ws = await websockets.connect(
        server.stream_url, sock=sock, max_size=None, max_queue=1, close_timeout=1
    )
    assert json.loads(await ws.recv())["type"] == "ready"
    start = {"type": "start", "context": "flood", "encoding": "pcm_f32le"}
    await ws.send(json.dumps(start))
    await ws.send(json.dumps({"type": "text", "context": "flood", "text": "Flood "}))
    await ws.send(json.dumps({"type": "end", "context": "flood"}))
    await wait_for(lambda: unread_bytes(ws) >= 4096)
    return ws


def flood_engine(fake_engine_factory: Any) -> Engine:
    """ "Flood " (5 letters) is FLOOD_CONTEXT_AUDIO_S of audio, made at once, 2 s a chunk."""
    engine: Engine = fake_engine_factory(
        ms_per_char=1000 * FLOOD_CONTEXT_AUDIO_S / 5, chunk_ms=2000
    )
    return engine


def abort(ws: websockets.ClientConnection) -> None:
    """Drop the TCP connection without a closing handshake."""
    ws.transport.abort()


# --- defect 1: leaked connections ----------------------------------------------------------


async def test_surrogate_ping_then_pings_then_close_frees_the_slot(
    fake_engine_factory: Any,
) -> None:
    async with running_server(fake_engine_factory(), max_connections=4) as srv:
        for _ in range(5):  # one more than max_connections: each newcomer must be admitted
            ws = await ready_client(srv, close_timeout=1)
            await ws.send(f'{{"type":"ping","id":"{LONE_SURROGATE}"}}')
            for i in range(70):
                await ws.send(json.dumps({"type": "ping", "id": i}))
            await ws.close()
        await wait_for(lambda: srv.runtime.connections == 0, timeout_s=20)


async def test_dropped_tcp_with_a_full_outbox_frees_the_slot(fake_engine_factory: Any) -> None:
    async with running_server(flood_engine(fake_engine_factory), max_connections=1) as srv:
        ws = await flooded_client(srv)
        for i in range(100):
            await ws.send(json.dumps({"type": "ping", "id": i}))
        await stop_reading_server(ws)
        abort(ws)
        await wait_for(lambda: srv.runtime.connections == 0, timeout_s=20)
        newcomer = await ready_client(srv)
        await newcomer.close()


async def stop_reading_server(ws: websockets.ClientConnection) -> None:
    """Send padded pings until the server stops reading them (its buffers are full).

    A server that answers pings while its writes are blocked must stop reading at some
    point (the client's own backpressure); until then, every ping is one more answer it
    has to queue. Returns once bytes stay in this client's write buffer.
    """
    padding = "p" * 8192
    for i in range(4096):  # 32 MB at most: far more than any socket buffer
        if ws.transport.get_write_buffer_size() > 0:
            return
        async with asyncio.timeout(10):
            await ws.send(json.dumps({"type": "ping", "id": f"{i}{padding}"}))
    pytest.fail("the server kept reading pings it could not answer")


# --- defect 2: one slow reader stalls everyone ---------------------------------------------


async def test_a_slow_reader_does_not_stall_other_clients(fake_engine_factory: Any) -> None:
    async with running_server(flood_engine(fake_engine_factory)) as srv:
        slow = await flooded_client(srv)
        try:
            ws = await ready_client(srv)
            # several segments at 60 ms of audio a letter (the fake engine's pace here is
            # the flood's: keep this text short, its audio is still seconds long)
            await ws.send(json.dumps({"type": "text", "text": "Hi there. Yes. "}))
            await ws.send(json.dumps({"type": "end"}))
            kinds: list[str] = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(20):
                    while "done" not in kinds:
                        kinds.append((await next_json(ws, timeout_s=20))["type"])
            assert "done" in kinds, (
                f"no done while a slow reader is connected; got {kinds}, "
                f"pool: {srv.runtime.pool.running_jobs} running, "
                f"{srv.runtime.pool.waiting_jobs} waiting"
            )
            await ws.close()
        finally:
            abort(slow)


# --- defect 3: lone surrogates -------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        f'{{"type":"text","text":"Hel{LONE_SURROGATE}lo there. "}}',
        f'{{"type":"ping","id":"{LONE_SURROGATE}"}}',
        f'{{"type":"text","context":"a{LONE_SURROGATE}","text":"Hello there. "}}',
    ],
    ids=["text", "ping-id", "context-id"],
)
async def test_a_lone_surrogate_gets_an_error_and_the_socket_stays_usable(
    fake_engine_factory: Any, payload: str
) -> None:
    async with running_server(fake_engine_factory()) as srv:
        ws = await ready_client(srv)
        await ws.send(payload)
        error = await next_json(ws)
        assert error["type"] == "error"
        assert error["code"] in ("invalid_message", "invalid_json")
        await assert_usable(ws)
        await ws.close()


# --- defect 5: clients that never read -----------------------------------------------------


async def test_a_client_that_never_reads_is_closed_with_1008(fake_engine_factory: Any) -> None:
    engine = flood_engine(fake_engine_factory)
    async with running_server(engine, write_timeout_s=1.0) as srv:
        ws = await flooded_client(srv)
        try:
            await wait_for(lambda: srv.runtime.connections == 0, timeout_s=20)
            # now read: what the server queued before giving up, then its close frame
            with pytest.raises(websockets.ConnectionClosed):
                async with asyncio.timeout(30):
                    while True:
                        await ws.recv()
            assert ws.close_code == 1008
        finally:
            abort(ws)


# --- defect 6: huge integers ---------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        '{{"type":"ping","id":{n}}}',
        '{{"type":"start","context":"a","sample_rate_hz":{n}}}',
        '{{"type":"cancel","played_ms":{n}}}',
    ],
    ids=["ping-id", "sample-rate", "played-ms"],
)
async def test_an_integer_of_5000_digits_answers_invalid_json(
    fake_engine_factory: Any, template: str
) -> None:
    async with running_server(fake_engine_factory()) as srv:
        ws = await ready_client(srv)
        await ws.send(template.format(n="9" * 5000))
        error = await next_json(ws)
        assert (error["type"], error["code"]) == ("error", "invalid_json")
        await assert_usable(ws)
        await ws.close()


# --- defect 8: log flooding ----------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at_least(self, level: int) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno >= level]


@contextlib.contextmanager
def captured_logs() -> Iterator[_Records]:
    """Records of the root logger and of uvicorn's (which does not propagate to the root)."""
    handler = _Records()
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


async def closed_by_server(ws: websockets.ClientConnection) -> None:
    with pytest.raises(websockets.ConnectionClosed):
        async with asyncio.timeout(10):
            while True:
                await ws.recv()


async def test_invalid_utf8_frames_log_one_warning_each_and_no_traceback(
    fake_engine_factory: Any,
) -> None:
    async with running_server(fake_engine_factory()) as srv:
        with captured_logs() as logs:
            for _ in range(3):
                ws = await ready_client(srv)
                await ws.send(b'{"type":"text","text":"\xff\xfe"}', text=True)
                await closed_by_server(ws)
                assert ws.close_code == 1007
            await wait_for(lambda: srv.runtime.connections == 0)
    assert not [r for r in logs.records if r.exc_info], "a traceback was logged"
    assert not logs.at_least(logging.ERROR)
    utf8 = [r for r in logs.at_least(logging.WARNING) if "UTF-8" in r.getMessage()]
    assert len(utf8) == 3


async def test_a_nul_in_text_logs_no_traceback(piper_engine: Engine) -> None:
    async with running_server(piper_engine) as srv:
        ws = await ready_client(srv)
        with captured_logs() as logs:
            await ws.send(json.dumps({"type": "text", "text": "Hello\u0000 there. "}))
            await ws.send(json.dumps({"type": "end"}))
            kinds: list[str] = []
            while "done" not in kinds:
                kinds.append((await next_json(ws, timeout_s=30))["type"])
        await ws.close()
    assert not [r for r in logs.records if r.exc_info], "a traceback was logged"
    assert not logs.at_least(logging.ERROR)
    assert len(logs.at_least(logging.WARNING)) <= 1
