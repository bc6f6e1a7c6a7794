"""Home Assistant's Wyoming protocol over TCP: a listener, a socket and a dialect.

Wyoming frames an event as one JSON header line (``type``, optional ``data``,
``data_length``, ``payload_length``), then ``data_length`` bytes of JSON data and
``payload_length`` bytes of raw payload. ``WyomingSocket`` is the connection's ``Socket``
over one TCP stream: it reads one event at a time (bounded by ``max_message_bytes``) and
hands it on as a JSON text frame ``{"type", "data"}``; what it is given to send is
already framed. ``WyomingDialect`` translates: ``describe`` → ``info`` (our voices,
``supports_synthesize_streaming: true``); ``synthesize`` (the whole text) and the
streaming ``synthesize-start`` / ``synthesize-chunk`` / ``synthesize-stop`` →
``audio-start``, ``audio-chunk``… (16-bit mono PCM at the voice's rate, from the first
segment on: before the sentence ends), ``audio-stop`` and, for a stream,
``synthesize-stopped``. A ``synthesize`` sent during a stream (clients send one for
servers that do not stream) is ignored. Mistakes are answered with ``error``.

``listening(runtime)`` runs the listener (``wyoming_port``; 0: none) for as long as the
app's lifespan, with the same admission and ``Connection`` as every other endpoint, so
many clients are served at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from speakstream.protocol.errors import ProtocolError
from speakstream.protocol.messages import (
    ClientMessage,
    EndMessage,
    StartMessage,
    TextMessage,
)
from speakstream.protocol.server_messages import Done, ErrorMessage, ServerMessage
from speakstream.server.admission import admitted, refusal
from speakstream.server.compat import wire
from speakstream.server.connection import Connection
from speakstream.server.dialect import AudioPayload, Frame, Inbound
from speakstream.server.runtime import Runtime
from speakstream.version import __version__

_LOGGER = logging.getLogger(__name__)
WYOMING_VERSION = "1.5.0"
_ATTRIBUTION = {"name": "speakstream", "url": "https://github.com/speakstream/speakstream"}


def event_bytes(kind: str, data: Mapping[str, Any] | None = None, payload: bytes = b"") -> bytes:
    """One Wyoming event on the wire."""
    header: dict[str, Any] = {"type": kind, "version": WYOMING_VERSION}
    body = json.dumps(data, ensure_ascii=False).encode() if data else b""
    if body:
        header["data_length"] = len(body)
    if payload:
        header["payload_length"] = len(payload)
    return json.dumps(header).encode() + b"\n" + body + payload


class WyomingSocket:
    """The connection's ``Socket`` over one TCP stream of Wyoming events."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_bytes: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.max_bytes = max_bytes

    async def receive(self) -> Mapping[str, Any]:
        try:
            line = await self.reader.readline()
            if not line:
                return {"type": "websocket.disconnect", "code": 1000}
            header = json.loads(line)
            if not isinstance(header, dict):
                return {"type": "websocket.receive", "text": line.decode(errors="replace")}
            inline = header.get("data")
            data: dict[str, Any] = inline if isinstance(inline, dict) else {}
            for name in ("data_length", "payload_length"):
                length = header.get(name) or 0
                if not isinstance(length, int) or not 0 <= length <= self.max_bytes:
                    return {"type": "websocket.receive", "text": "not a Wyoming event"}
                if length:
                    chunk = await self.reader.readexactly(length)
                    if name == "data_length":
                        data = {**data, **json.loads(chunk)}
        except (ValueError, UnicodeDecodeError):  # not JSON (JSONDecodeError is one)
            return {"type": "websocket.receive", "text": "not a Wyoming event"}
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return {"type": "websocket.disconnect", "code": 1006}
        event = {"type": header.get("type"), "data": data}
        return {"type": "websocket.receive", "text": json.dumps(event)}

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_text(self, data: str) -> None:
        await self.send_bytes(data.encode())

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


class WyomingDialect:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._count = 0
        self._context: str | None = None  # the one synthesis at a time
        self._streaming = False
        self._started_audio = False
        self._rate_hz = 0

    def inbound(self, frame: Mapping[str, Any]) -> Inbound:
        obj = wire.json_object(frame)
        if obj is None:
            return Inbound(replies=[self._error("not a Wyoming event", "invalid_message")])
        try:
            return self._read(str(obj.get("type")), obj.get("data") or {})
        except ProtocolError as error:
            return Inbound(replies=self.event(ErrorMessage.of(error)))

    def _read(self, kind: str, data: dict[str, Any]) -> Inbound:
        if kind == "describe":
            return Inbound(replies=[event_bytes("info", self._info())])
        if kind == "synthesize":
            if self._streaming:
                return Inbound()  # the whole text again, for servers that do not stream
            text = wire.optional_str(data, "text") or ""
            start = self._start(data)
            messages: list[ClientMessage] = [start]
            if text:
                messages.append(TextMessage(start.context, text))
            messages.append(EndMessage(start.context))
            return Inbound(messages=messages)
        if kind == "synthesize-start":
            start = self._start(data)
            self._streaming = True
            return Inbound(messages=(start,))
        if kind in ("synthesize-chunk", "synthesize-stop"):
            if not self._streaming or self._context is None:
                raise wire.invalid(f"{kind} without synthesize-start")
            if kind == "synthesize-stop":
                return Inbound(messages=(EndMessage(self._context),))
            chunk = wire.optional_str(data, "text")
            return Inbound(messages=(TextMessage(self._context, chunk),) if chunk else ())
        return Inbound()  # events for other services (asr, wake, ...) are not ours

    def _start(self, data: dict[str, Any]) -> StartMessage:
        if self._context is not None:
            raise wire.invalid("a synthesis is already running on this connection")
        voice_spec = data.get("voice")
        name = voice_spec.get("name") if isinstance(voice_spec, dict) else None
        voice = self.runtime.voice_map.resolve(name if isinstance(name, str) else None)
        if voice is None:
            raise wire.invalid(f"no voice {name!r}")
        self._count += 1
        cid = self._context = f"synthesis-{self._count}"
        self._rate_hz = self.runtime.session_config.voices[voice]
        self._started_audio = False
        return StartMessage(cid, {"voice": voice, "encoding": "pcm_s16le"})

    def _info(self) -> dict[str, Any]:
        caps = self.runtime.engine.capabilities
        default = caps.voice(caps.default_voice)
        voices = []
        for name in self.runtime.session_config.voices:  # uploads too (POST /v1/voices)
            language = (caps.voice(name) or default or caps.voices[0]).language
            voices.append(
                {
                    "name": name,
                    "description": name,
                    "attribution": _ATTRIBUTION,
                    "installed": True,
                    "version": None,
                    "languages": [language] if language else [],
                    "speakers": None,
                }
            )
        program = {
            "name": "speakstream",
            "description": f"speakstream ({caps.engine})",
            "attribution": _ATTRIBUTION,
            "installed": True,
            "version": __version__,
            "voices": voices,
            "supports_synthesize_streaming": True,
        }
        return {
            "asr": [],
            "tts": [program],
            "handle": [],
            "intent": [],
            "wake": [],
            "mic": [],
            "snd": [],
        }

    @staticmethod
    def _error(text: str, code: str) -> bytes:
        return event_bytes("error", {"text": text, "code": code})

    def event(self, message: ServerMessage) -> list[Frame]:
        if isinstance(message, Done) and message.context == self._context:
            frames: list[Frame] = []
            if not self._started_audio:
                frames.append(event_bytes("audio-start", _format(self._rate_hz)))
            frames.append(event_bytes("audio-stop", {}))
            if self._streaming:
                frames.append(event_bytes("synthesize-stopped"))
            self._context, self._streaming = None, False
            return frames
        if isinstance(message, ErrorMessage):
            return [self._error(message.message, message.code)]
        return []

    def audio(self, payload: AudioPayload) -> list[Frame]:
        fmt = _format(payload.sample_rate_hz)
        frames: list[Frame] = []
        if not self._started_audio:
            self._started_audio = True
            frames.append(event_bytes("audio-start", fmt))
        frames.append(event_bytes("audio-chunk", fmt, payload.data))
        return frames


def _format(rate_hz: int) -> dict[str, int]:
    return {"rate": rate_hz, "width": 2, "channels": 1}


async def serve_client(
    runtime: Runtime, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """One TCP client, from admission to the end of its connection."""
    socket = WyomingSocket(reader, writer, runtime.settings.max_message_bytes)
    refused = refusal(runtime)
    if refused is not None:
        error, _ = refused
        with contextlib.suppress(Exception):
            await socket.send_bytes(
                event_bytes("error", {"text": error.message, "code": str(error.code)})
            )
        await socket.close()
        return
    async with admitted(runtime):
        try:
            await Connection(socket, runtime, WyomingDialect(runtime)).serve()
        finally:
            await socket.close()


@contextlib.asynccontextmanager
async def listening(runtime: Runtime) -> AsyncIterator[asyncio.Server | None]:
    """The Wyoming listener on ``wyoming_port`` (None when it is 0) until the block ends;
    then it stops and every client it serves is ended."""
    port = runtime.settings.wyoming_port
    if not port:
        yield None
        return
    clients: set[asyncio.Task[None]] = set()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        clients.add(task)
        try:
            await serve_client(runtime, reader, writer)
        finally:
            clients.discard(task)

    server = await asyncio.start_server(
        on_client, runtime.settings.host, port, limit=runtime.settings.max_message_bytes
    )
    _LOGGER.info("Wyoming listener on %s:%d", runtime.settings.host, port)
    try:
        yield server
    finally:
        server.close()
        for task in list(clients):
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        with contextlib.suppress(Exception):
            await server.wait_closed()
