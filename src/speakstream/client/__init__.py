"""Async Python client for the native protocol.

    async with connect("ws://127.0.0.1:8000/v1/stream") as conn:
        ctx = await conn.open_context("a", voice="en_US-joe-medium")
        await ctx.send("Hello there. ")
        await ctx.end()
        async for item in ctx:          # AudioChunk or Event, in order, until done
            ...

One reader task demultiplexes the socket into one bounded queue per context, so several
contexts share a socket. Every item carries ``received_s`` (``time.perf_counter()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus, InvalidURI

from speakstream.protocol.errors import SpeakstreamError
from speakstream.protocol.frames import unpack_audio_frame
from speakstream.protocol.messages import DEFAULT_CONTEXT

_QUEUE_ITEMS = 4096


@dataclass(frozen=True, slots=True)
class AudioChunk:
    context: str
    stream: int
    segment: int
    frame: int
    data: bytes
    received_s: float


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict[str, Any]
    received_s: float

    @property
    def context(self) -> str | None:
        value = self.data.get("context")
        return value if isinstance(value, str) else None


class ServerError(SpeakstreamError):
    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(f"{data.get('code')}: {data.get('message')}")
        self.code = str(data.get("code"))
        self.message = str(data.get("message"))
        self.context = data.get("context")
        self.retryable = bool(data.get("retryable"))


class ConnectionClosed(SpeakstreamError):
    """The server closed the connection (``code``, ``reason``)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed ({code}): {reason}")
        self.code = code
        self.reason = reason


_END = object()


@dataclass
class ContextResult:
    audio: bytes
    chunks: list[AudioChunk]
    events: list[Event]

    @property
    def errors(self) -> list[Event]:
        return [e for e in self.events if e.type == "error"]

    def first(self, kind: str) -> Event | None:
        return next((e for e in self.events if e.type == kind), None)


@dataclass
class Context:
    conn: Connection
    id: str
    _queue: asyncio.Queue[AudioChunk | Event | object] = field(
        default_factory=lambda: asyncio.Queue(_QUEUE_ITEMS)
    )
    finished: bool = False

    async def send(self, text: str) -> None:
        await self.conn.send_json({"type": "text", "context": self.id, "text": text})

    async def flush(self) -> None:
        await self.conn.send_json({"type": "flush", "context": self.id})

    async def end(self) -> None:
        await self.conn.send_json({"type": "end", "context": self.id})

    async def cancel(self, played_ms: float | None = None) -> None:
        message: dict[str, Any] = {"type": "cancel", "context": self.id}
        if played_ms is not None:
            message["played_ms"] = played_ms
        await self.conn.send_json(message)

    async def __aiter__(self) -> AsyncIterator[AudioChunk | Event]:
        """Audio and events of this context until ``done`` or ``cancelled`` (included)."""
        while not self.finished:
            item = await self._queue.get()
            if item is _END:
                closed = self.conn.closed
                raise (
                    ConnectionClosed(closed[0], closed[1]) if closed else ConnectionClosed(None, "")
                )
            assert isinstance(item, AudioChunk | Event)
            if isinstance(item, Event) and item.type in ("done", "cancelled"):
                self.finished = True
            yield item

    async def drain(
        self,
        on_item: Callable[[AudioChunk | Event], None] | None = None,
        *,
        raise_errors: bool = True,
    ) -> Event:
        """Hand each item to ``on_item`` until ``done`` or ``cancelled``; return that event.

        An ``error`` event raises ``ServerError`` (before ``on_item`` sees it) unless
        ``raise_errors`` is False; a closed connection raises ``ConnectionClosed``. Nothing
        is kept here: the caller decides what to hold (``collect`` holds it all).
        """
        async for item in self:
            if raise_errors and isinstance(item, Event) and item.type == "error":
                raise ServerError(item.data)
            if on_item is not None:
                on_item(item)
            if isinstance(item, Event) and item.type in ("done", "cancelled"):
                return item
        raise RuntimeError(f"context {self.id!r} had already finished")

    async def collect(self) -> ContextResult:
        """The whole utterance: audio, chunks and events (errors included, not raised)."""
        chunks: list[AudioChunk] = []
        events: list[Event] = []

        def keep(item: AudioChunk | Event) -> None:
            if isinstance(item, AudioChunk):
                chunks.append(item)
            else:
                events.append(item)

        await self.drain(keep, raise_errors=False)
        return ContextResult(b"".join(c.data for c in chunks), chunks, events)


class Connection:
    def __init__(self, ws: ClientConnection, ready: dict[str, Any]) -> None:
        self.ws = ws
        self.ready = ready
        self.events: asyncio.Queue[Event] = asyncio.Queue(_QUEUE_ITEMS)  # not tied to a context
        self.closed: tuple[int | None, str] | None = None
        self._contexts: dict[str, Context] = {}
        self._stream_context: dict[int, str] = {}
        self._reader = asyncio.create_task(self._read(), name="speakstream-client-reader")

    def context(self, context_id: str = DEFAULT_CONTEXT) -> Context:
        """A handle for a context (created on the server by its first text)."""
        ctx = self._contexts.get(context_id)
        if ctx is None or ctx.finished:
            ctx = Context(self, context_id)
            self._contexts[context_id] = ctx
        return ctx

    async def open_context(self, context_id: str = DEFAULT_CONTEXT, **options: Any) -> Context:
        """Send ``start`` with options (voice, encoding, sample_rate_hz, speed, chunking)."""
        ctx = self.context(context_id)
        await self.send_json({"type": "start", "context": context_id, **options})
        return ctx

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def ping(self, ping_id: str | int | None = None) -> None:
        await self.send_json({"type": "ping"} | ({} if ping_id is None else {"id": ping_id}))

    async def next_event(self, timeout_s: float | None = None) -> Event:
        async with asyncio.timeout(timeout_s):
            return await self.events.get()

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                now = time.perf_counter()
                if isinstance(message, bytes):
                    header, payload = unpack_audio_frame(message)
                    cid = self._stream_context.get(header.stream, DEFAULT_CONTEXT)
                    chunk = AudioChunk(
                        cid, header.stream, header.segment, header.frame, payload, now
                    )
                    target = self._contexts.get(cid)
                    if target is not None:
                        await target._queue.put(chunk)
                    continue
                data = json.loads(message)
                event = Event(str(data.get("type")), data, now)
                owner = event.context
                if event.type == "segment" and owner is not None:
                    self._stream_context[int(data["stream"])] = owner
                if (
                    owner is not None
                    and owner in self._contexts
                    and not self._contexts[owner].finished
                ):
                    await self._contexts[owner]._queue.put(event)
                else:
                    await self.events.put(event)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = (self.ws.close_code, self.ws.close_reason or "")
            for ctx in self._contexts.values():
                with contextlib.suppress(asyncio.QueueFull):
                    ctx._queue.put_nowait(_END)
            closed = Event(
                "closed", {"code": self.closed[0], "reason": self.closed[1]}, time.perf_counter()
            )
            with contextlib.suppress(asyncio.QueueFull):
                self.events.put_nowait(closed)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def wait_closed(self) -> tuple[int | None, str]:
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        return self.closed or (None, "")

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


DEFAULT_URL = "ws://127.0.0.1:8000/v1/stream"


def default_url(env: Mapping[str, str] | None = None) -> str:
    """``SPEAKSTREAM_URL`` from the environment, else ``DEFAULT_URL`` (the CLI's and the
    sync wrapper's default; ``connect`` itself takes the URL it is given)."""
    return (os.environ if env is None else env).get("SPEAKSTREAM_URL") or DEFAULT_URL


class ConnectError(SpeakstreamError, ConnectionError):
    """No speakstream server could be reached at the URL; the message says what to do."""


async def _open(
    url: str, open_timeout_s: float, api_key: str | None = None, ssl: Any = None
) -> Connection:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    extra: dict[str, Any] = {"ssl": ssl} if ssl is not None else {}
    try:
        ws = await websockets.connect(
            url,
            open_timeout=open_timeout_s,
            max_size=None,
            compression=None,
            additional_headers=headers,
            **extra,
        )
    except InvalidURI:
        raise ConnectError(
            f"{url!r} is not a WebSocket URL; expected ws://HOST:PORT/v1/stream"
        ) from None
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in (401, 403) and urlsplit(url).path.rstrip("/").endswith("/v1/stream"):
            raise ConnectError(
                f"the server at {url} refused authentication (HTTP {status})"
            ) from None
        raise ConnectError(
            f"no speakstream endpoint at {url} (HTTP {status}); the native protocol is at "
            "ws://HOST:PORT/v1/stream"
        ) from None
    except (OSError, TimeoutError) as exc:
        raise ConnectError(
            f"cannot reach a speakstream server at {url} ({exc}); start one with "
            "'python -m speakstream serve'"
        ) from None
    raw = await ws.recv()
    ready = json.loads(raw)
    if ready.get("type") != "ready":
        await ws.close()
        if ready.get("type") == "error":
            raise ServerError(ready)
        raise ConnectError(f"unexpected greeting from {url}: {raw!r}")
    return Connection(ws, ready)


class _Connector:
    """What ``connect`` returns: await it, or use it with ``async with``."""

    def __init__(self, url: str, open_timeout_s: float, api_key: str | None, ssl: Any) -> None:
        self._url = url
        self._open_timeout_s = open_timeout_s
        self._api_key = api_key
        self._ssl = ssl
        self._conn: Connection | None = None

    def __await__(self) -> Generator[Any, None, Connection]:
        return _open(self._url, self._open_timeout_s, self._api_key, self._ssl).__await__()

    async def __aenter__(self) -> Connection:
        self._conn = await _open(self._url, self._open_timeout_s, self._api_key, self._ssl)
        return self._conn

    async def __aexit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            await self._conn.close()


def connect(
    url: str = DEFAULT_URL,
    *,
    open_timeout_s: float = 10.0,
    api_key: str | None = None,
    ssl: Any = None,
) -> _Connector:
    """Connect and wait for ``ready``: ``async with connect(url) as conn:`` or
    ``conn = await connect(url)``. Raises ``ConnectError`` (with what to do) when no
    server answers, the URL is wrong or authentication is refused.

    ``wss://`` URLs use TLS (``ssl``: an ``ssl.SSLContext``, default: the system's trust
    store, which ``SSL_CERT_FILE`` can point elsewhere); ``api_key`` (a key or a token) is
    sent as ``Authorization: Bearer``."""
    return _Connector(url, open_timeout_s, api_key, ssl)


__all__ = [
    "DEFAULT_URL",
    "AudioChunk",
    "ConnectError",
    "Connection",
    "ConnectionClosed",
    "Context",
    "ContextResult",
    "Event",
    "ServerError",
    "connect",
    "default_url",
]
