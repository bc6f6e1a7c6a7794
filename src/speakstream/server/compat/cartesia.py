"""Cartesia's WebSocket text-to-speech: ``/tts/websocket``.

Each client message is a generation request for a ``context_id`` (``transcript``,
``voice`` {``mode: "id"``, ``id``}, ``output_format`` {``container: "raw"``,
``encoding`` ``pcm_s16le``/``pcm_f32le``/``pcm_mulaw``/``pcm_alaw``, ``sample_rate``},
``continue``, ``flush``, ``add_timestamps``, ``speed``, ``max_buffer_delay_ms``) or a
cancel (``{"context_id", "cancel": true}``). The first request of a context sets its
format; ``continue: true`` keeps it open for more transcript, and a request without it
ends the context after its transcript. Replies, each with ``context_id``, ``done`` and
``status_code``: ``chunk`` (base64 audio), ``timestamps`` (``word_timestamps``:
``words``, ``start``, ``end`` in seconds from the start of the context's audio),
``flush_done`` (``flush_id`` counts a context's flushes from 1), ``done``, ``error``. A
cancelled context gets nothing more. A format we cannot make is refused with an
``error``, never sent as other bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket

from speakstream.audio.encoders import UnsupportedFormatError, resolve_rate_hz
from speakstream.protocol.errors import ErrorCode, ProtocolError
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
    Alignment,
    Cancelled,
    Done,
    ErrorMessage,
    Flushed,
    ServerMessage,
    encode_json,
)
from speakstream.server.admission import serve_websocket
from speakstream.server.compat import wire
from speakstream.server.dialect import AudioPayload, Frame, Inbound
from speakstream.server.runtime import Runtime
from speakstream.server.voices import VoiceMap

RAW_ENCODINGS = {
    "pcm_s16le": "pcm_s16le",
    "pcm_f32le": "pcm_f32le",
    "pcm_mulaw": "mulaw",
    "pcm_alaw": "alaw",
}


@dataclass(slots=True)
class _Context:
    timestamps: bool
    flushes: int = 0
    ended: bool = False


class CartesiaDialect:
    def __init__(self, voice_map: VoiceMap, voice_rates_hz: Mapping[str, int], timings: bool):
        self.voice_map = voice_map
        self.voice_rates_hz = voice_rates_hz
        self.timings = timings
        self._contexts: dict[str, _Context] = {}

    def inbound(self, frame: Mapping[str, Any]) -> Inbound:
        return wire.read_inbound(frame, self._read, self.event)

    def _read(self, obj: dict[str, Any]) -> Inbound:
        cid = wire.context_id(obj.get("context_id"), "context_id")
        ctx = self._contexts.get(cid)
        if wire.optional_bool(obj, "cancel"):
            if ctx is None:
                return Inbound()
            del self._contexts[cid]
            return Inbound(messages=(CancelMessage(cid),))
        transcript = wire.optional_str(obj, "transcript") or ""
        keep_open = wire.optional_bool(obj, "continue")
        messages: list[ClientMessage] = []
        if ctx is None or ctx.ended:
            start = self._start(cid, obj)
            ctx = self._contexts[cid] = _Context(start.options.get("alignment") is True)
            messages.append(start)
        if transcript:
            messages.append(TextMessage(cid, transcript))
        if wire.optional_bool(obj, "flush"):
            messages.append(FlushMessage(cid))
        if not keep_open:
            messages.append(EndMessage(cid))
            ctx.ended = True
        return Inbound(messages=messages)

    def _start(self, cid: str, obj: dict[str, Any]) -> StartMessage:
        voice_spec = obj.get("voice")
        vendor_voice = voice_spec.get("id") if isinstance(voice_spec, dict) else None
        voice = self.voice_map.resolve(vendor_voice if isinstance(vendor_voice, str) else None)
        if voice is None:
            raise ProtocolError(ErrorCode.UNKNOWN_VOICE, f"voice {vendor_voice!r} not found", cid)
        fmt = obj.get("output_format")
        if not isinstance(fmt, dict):
            raise wire.invalid("'output_format' is required", cid)
        encoding = RAW_ENCODINGS.get(str(fmt.get("encoding")))
        if fmt.get("container", "raw") != "raw" or encoding is None:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_ENCODING,
                f"output_format {fmt!r} is not supported here: container raw with "
                f"encoding {', '.join(RAW_ENCODINGS)}",
                cid,
            )
        rate = fmt.get("sample_rate")
        if not isinstance(rate, int) or isinstance(rate, bool):
            raise wire.invalid("'output_format.sample_rate' must be an integer", cid)
        try:
            resolve_rate_hz(encoding, rate, self.voice_rates_hz[voice])
        except UnsupportedFormatError as exc:
            raise ProtocolError(ErrorCode.UNSUPPORTED_SAMPLE_RATE, str(exc), cid) from None
        options: dict[str, Value] = {"voice": voice, "encoding": encoding, "sample_rate_hz": rate}
        speed = obj.get("speed")
        if isinstance(speed, int | float) and not isinstance(speed, bool):
            options["speed"] = min(4.0, max(0.25, float(speed)))
        if wire.optional_bool(obj, "add_timestamps"):
            if not self.timings:
                raise ProtocolError(
                    ErrorCode.ALIGNMENT_UNSUPPORTED, "this voice has no timestamps", cid
                )
            options["alignment"] = True
        return StartMessage(cid, options)

    # --- outbound ---------------------------------------------------------------------

    def event(self, message: ServerMessage) -> list[Frame]:
        if isinstance(message, Alignment):
            words = message.words
            timestamps = {
                "words": [str(w["word"]) for w in words],
                "start": [round(float(w["start_ms"]) / 1000, 4) for w in words],
                "end": [
                    round((float(w["start_ms"]) + float(w["duration_ms"])) / 1000, 4) for w in words
                ],
            }
            return [self._reply("timestamps", message.context, word_timestamps=timestamps)]
        if isinstance(message, Flushed):
            ctx = self._contexts.get(message.context)
            if ctx is None:
                return []
            ctx.flushes += 1
            return [
                self._reply("flush_done", message.context, flush_done=True, flush_id=ctx.flushes)
            ]
        if isinstance(message, Done):
            ctx = self._contexts.get(message.context)
            if ctx is not None and ctx.ended:
                del self._contexts[message.context]
            return [self._reply("done", message.context, done=True, status_code=200)]
        if isinstance(message, Cancelled):
            return []
        if isinstance(message, ErrorMessage):
            body = {
                "type": "error",
                "context_id": message.context,
                "done": True,
                "status_code": 400,
                "title": message.code,
                "error_code": message.code,
                "message": message.message,
            }
            return [encode_json(body)]
        return []

    def audio(self, payload: AudioPayload) -> list[Frame]:
        return [self._reply("chunk", payload.context, data=wire.b64(payload.data), step_time=0.0)]

    @staticmethod
    def _reply(kind: str, cid: str, **fields: Any) -> str:
        body: dict[str, Any] = {"type": kind, "context_id": cid, "done": False, "status_code": 206}
        body.update(fields)
        return encode_json(body)


async def websocket_endpoint(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    dialect = CartesiaDialect(
        runtime.voice_map, runtime.session_config.voices, runtime.engine.capabilities.word_timings
    )
    await serve_websocket(websocket, dialect)


def routes() -> list[BaseRoute]:
    return [WebSocketRoute("/tts/websocket", websocket_endpoint)]
