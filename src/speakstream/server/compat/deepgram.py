"""Deepgram's WebSocket text-to-speech: ``/v1/speak``.

Query: ``model`` (a Deepgram voice such as ``aura-asteria-en``, mapped by ``voice_map``),
``encoding`` (``linear16``, ``mulaw``, ``alaw``), ``sample_rate``. A query we cannot serve
is refused before the upgrade with HTTP 400 and Deepgram's JSON error.

Client messages: ``{"type": "Speak", "text"}`` appends text to the current utterance (one
is opened by the first ``Speak`` after the start, a ``Clear`` or a ``Close``); ``Flush``
asks for its audio now and is answered by ``{"type": "Flushed", "sequence_id"}`` after the
audio it covers; ``Clear`` drops the utterance (barge-in) and is answered by
``{"type": "Cleared", "sequence_id"}``, after which none of its audio is sent; ``Close``
finishes the audio of what was sent and closes the socket with 1000. Audio is binary
frames of raw samples. The server opens with ``Metadata``; mistakes are answered with
``{"type": "Warning", "description", "code"}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from speakstream.audio.encoders import UnsupportedFormatError, resolve_rate_hz
from speakstream.protocol.messages import (
    CancelMessage,
    ClientMessage,
    EndMessage,
    FlushMessage,
    StartMessage,
    TextMessage,
)
from speakstream.protocol.options import Value
from speakstream.protocol.server_messages import (
    Cancelled,
    Done,
    ErrorMessage,
    Flushed,
    Ready,
    ServerMessage,
    encode_json,
)
from speakstream.server.admission import serve_websocket
from speakstream.server.compat import wire
from speakstream.server.dialect import AudioPayload, CloseSocket, Frame, Inbound
from speakstream.server.runtime import Runtime

ENCODINGS = {"linear16": "pcm_s16le", "mulaw": "mulaw", "alaw": "alaw"}
DEFAULT_MODEL = "aura-asteria-en"
DEFAULT_RATE_HZ = {"linear16": 24000, "mulaw": 8000, "alaw": 8000}


@dataclass(frozen=True, slots=True)
class SpeakSettings:
    model: str
    voice: str
    encoding: str  # ours
    sample_rate_hz: int


class DeepgramDialect:
    def __init__(self, settings: SpeakSettings) -> None:
        self.settings = settings
        self.request_id = str(uuid.uuid4())
        self._utterance = 0
        self._open: str | None = None  # the context Speak appends to
        self._flushes = 0
        self._clears = 0
        self._closing = False

    def inbound(self, frame: Mapping[str, Any]) -> Inbound:
        return wire.read_inbound(frame, self._read, self.event)

    def _read(self, obj: dict[str, Any]) -> Inbound:
        kind = obj.get("type")
        if self._closing:
            raise wire.invalid("the socket is closing (Close was sent)")
        if kind == "Speak":
            text = wire.optional_str(obj, "text")
            if not text:
                raise wire.invalid("'Speak' needs a non-empty 'text'")
            messages: list[ClientMessage] = []
            if self._open is None:
                self._utterance += 1
                self._open = f"utterance-{self._utterance}"
                s = self.settings
                options: dict[str, Value] = {
                    "voice": s.voice,
                    "encoding": s.encoding,
                    "sample_rate_hz": s.sample_rate_hz,
                }
                messages.append(StartMessage(self._open, options))
            messages.append(TextMessage(self._open, text))
            return Inbound(messages=messages)
        if kind == "Flush":
            if self._open is None:
                return Inbound(replies=self._flushed())
            return Inbound(messages=(FlushMessage(self._open),))
        if kind == "Clear":
            cid, self._open = self._open, None
            if cid is None:
                return Inbound(replies=self._cleared())
            return Inbound(messages=(CancelMessage(cid),))
        if kind == "Close":
            self._closing = True
            if self._open is None:
                return Inbound(replies=(CloseSocket(),))
            return Inbound(messages=(EndMessage(self._open),))
        raise wire.invalid(f"unknown message type {kind!r}; expected Speak, Flush, Clear or Close")

    def _flushed(self) -> list[Frame]:
        body = {"type": "Flushed", "sequence_id": self._flushes}
        self._flushes += 1
        return [encode_json(body)]

    def _cleared(self) -> list[Frame]:
        body = {"type": "Cleared", "sequence_id": self._clears}
        self._clears += 1
        return [encode_json(body)]

    def event(self, message: ServerMessage) -> list[Frame]:
        if isinstance(message, Ready):
            return [encode_json(self._metadata())]
        if isinstance(message, Flushed):
            return self._flushed()
        if isinstance(message, Cancelled):
            return self._cleared()
        if isinstance(message, Done):
            if message.context == self._open:
                self._open = None
            return [CloseSocket()] if self._closing else []
        if isinstance(message, ErrorMessage):
            body = {"type": "Warning", "description": message.message, "code": message.code}
            return [encode_json(body)]
        return []

    def _metadata(self) -> dict[str, Any]:
        return {
            "type": "Metadata",
            "request_id": self.request_id,
            "model_name": self.settings.model,
            "model_version": "speakstream",
            "model_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, self.settings.voice)),
        }

    def audio(self, payload: AudioPayload) -> list[Frame]:
        return [payload.data]


def speak_settings(query: Mapping[str, str], runtime: Runtime) -> SpeakSettings | str:
    """The settings the query asks for, or why Deepgram would answer 400."""
    model = query.get("model") or DEFAULT_MODEL
    voice = runtime.voice_map.resolve(model)
    if voice is None:
        return f"No such model: {model!r}"
    name = query.get("encoding") or "linear16"
    if name not in ENCODINGS:
        return f"encoding {name!r} is not supported on this endpoint; use linear16, mulaw or alaw"
    raw_rate = query.get("sample_rate")
    if raw_rate is not None and not raw_rate.isdigit():
        return f"sample_rate {raw_rate!r} is not a number"
    rate_hz = int(raw_rate) if raw_rate else DEFAULT_RATE_HZ[name]
    try:
        rate_hz = resolve_rate_hz(ENCODINGS[name], rate_hz, runtime.session_config.voices[voice])
    except UnsupportedFormatError:
        return f"sample_rate {rate_hz} is not supported for encoding {name}"
    return SpeakSettings(model, voice, ENCODINGS[name], rate_hz)


async def speak(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    settings = speak_settings(websocket.query_params, runtime)
    if isinstance(settings, str):
        body = {"err_code": "INVALID_QUERY_PARAMETER", "err_msg": settings}
        await websocket.send_denial_response(JSONResponse(body, status_code=400))
        return
    await serve_websocket(websocket, DeepgramDialect(settings))


def routes() -> list[BaseRoute]:
    return [WebSocketRoute("/v1/speak", speak)]
