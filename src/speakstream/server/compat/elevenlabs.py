"""ElevenLabs' WebSocket input streaming: ``stream-input`` and ``multi-stream-input``.

``/v1/text-to-speech/{voice_id}/stream-input`` is one utterance per socket: an opening
``{"text": " "}`` (with ``voice_settings``, ``generation_config``), text pieces (each may
``flush``; ``try_trigger_generation`` is accepted: our segmenter starts early anyway),
and ``{"text": ""}`` to end. Replies are ``{"audio": base64, "isFinal": null,
"alignment", "normalizedAlignment"}`` and, after the last audio, ``{"isFinal": true}``;
then the server closes with 1000.

``.../multi-stream-input`` carries many contexts (``context_id``): ``flush``,
``close_context`` (a context whose text was flushed finishes its audio; one with
unflushed text is cancelled: that is a barge-in), ``close_socket`` (every context
finishes, then the socket closes), and ``{"text": ""}`` is a keep-alive that ends
nothing. Replies carry ``contextId``; each context ends with ``isFinal``.

Query: ``output_format`` (``pcm_<rate>``, ``ulaw_8000``, ``alaw_8000``, and the MP3
formats ElevenLabs lists, ``mp3_<rate>_<kbps>``, made at that bit rate; any other format
is refused with ElevenLabs' error, never sent as other bytes), ``model_id``,
``sync_alignment``, and:

* ``auto_mode=true``: no buffering: every text message is synthesized as it comes (a
  flush after each), for clients that send whole phrases (Pipecat's service does);
* ``inactivity_timeout`` (seconds, 1 to 180, default 20): the socket is closed with 1008
  and ElevenLabs' reason once that long passes without a message from the client while
  its text is still open (before ``{"text": ""}`` on stream-input, before
  ``close_socket`` on multi-stream-input). Any message counts, the ``" "`` keep-alive
  included. The timer wraps the socket's ASGI ``receive`` (``_InputClock``): when it
  runs out, the dialect gets a frame that only says so, and answers it with the close.

Character timings are our word timings: each word's time shared by its
characters, with the space between two words in the gap between them, in milliseconds
from the start of the audio chunk the message carries (ElevenLabs' convention).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from speakstream.audio.encoders import UnsupportedFormatError, resolve_rate_hz
from speakstream.protocol.errors import CloseCode, ErrorCode, ProtocolError
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
    ServerMessage,
    encode_json,
)
from speakstream.server.admission import send_refusal, serve_websocket
from speakstream.server.compat import wire
from speakstream.server.dialect import AudioPayload, CloseSocket, Frame, Inbound
from speakstream.server.runtime import Runtime

DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"
# ElevenLabs' MP3 formats (rate, kb/s); any other mp3_* is not theirs
MP3_FORMATS = frozenset(
    {(22050, 32), (24000, 48), (44100, 32), (44100, 64), (44100, 96), (44100, 128), (44100, 192)}
)
DEFAULT_INACTIVITY_TIMEOUT_S = 20
MAX_INACTIVITY_TIMEOUT_S = 180
_SINGLE_CONTEXT = "default"
_INPUT_TIMED_OUT = "speakstream.elevenlabs.inactivity_timeout_s"  # in the clock's own frame


def inactivity_reason(timeout_s: float) -> str:
    """ElevenLabs' close reason, cut to what a close frame carries (123 bytes)."""
    reason = (
        f"Have not received a new text input within the timeout of {timeout_s:g} seconds. "
        "Streaming input terminated. Please make sure to either feed the input in the "
        'timely manner, or to send the end of input text (empty string "") when done.'
    )
    return reason.encode()[:123].decode(errors="ignore")


def parse_output_format(name: str, voice_rate_hz: int) -> tuple[str, int, int | None] | None:
    """Our (encoding, rate, bit rate in kb/s or None) for an ElevenLabs ``output_format``;
    None if we cannot make it."""
    parts = name.split("_")
    kinds = {"pcm": ("pcm_s16le", 2), "ulaw": ("mulaw", 2), "alaw": ("alaw", 2), "mp3": ("mp3", 3)}
    if parts[0] not in kinds or len(parts) != kinds[parts[0]][1]:
        return None
    if not all(part.isdigit() for part in parts[1:]):
        return None
    encoding, rate_hz = kinds[parts[0]][0], int(parts[1])
    if encoding == "mp3" and (rate_hz, int(parts[2])) not in MP3_FORMATS:
        return None
    bit_rate_kbps = int(parts[2]) if encoding == "mp3" else None
    try:
        return encoding, resolve_rate_hz(encoding, rate_hz, voice_rate_hz), bit_rate_kbps
    except UnsupportedFormatError:
        return None


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """What the URL fixed for every context of the socket."""

    voice: str
    encoding: str
    sample_rate_hz: int
    alignment: bool  # the engine has word timings
    auto_mode: bool = False  # every text message is synthesized at once
    inactivity_timeout_s: float = DEFAULT_INACTIVITY_TIMEOUT_S
    bit_rate_kbps: int | None = None  # mp3's, from the format name


@dataclass(slots=True)
class _Context:
    flushed: bool = False  # no text since the last flush
    ending: bool = False
    words: list[dict[str, Any]] = field(default_factory=list)  # timings awaiting their audio


@dataclass(slots=True)
class ElevenLabsDialect:
    settings: StreamSettings
    multi: bool
    _contexts: dict[str, _Context] = field(default_factory=dict)
    _ended: bool = False  # stream-input: the one context has ended
    _closing: bool = False  # close_socket: close once every context is over

    # --- inbound ----------------------------------------------------------------------

    @property
    def awaiting_text(self) -> bool:
        """The client's text is still open: its silence counts toward the timeout."""
        return not (self._closing if self.multi else self._ended)

    def inbound(self, frame: Mapping[str, Any]) -> Inbound:
        timeout_s = frame.get(_INPUT_TIMED_OUT)
        if timeout_s is not None:
            close = CloseSocket(CloseCode.POLICY_VIOLATION, inactivity_reason(timeout_s))
            return Inbound(replies=(close,))
        return wire.read_inbound(frame, self._read, self.event)

    def _read(self, obj: dict[str, Any]) -> Inbound:
        text = wire.optional_str(obj, "text")
        flush = wire.optional_bool(obj, "flush")
        wire.optional_bool(obj, "try_trigger_generation")
        if self.multi and wire.optional_bool(obj, "close_socket"):
            return self._close_socket()
        cid = _SINGLE_CONTEXT
        if self.multi:
            raw_id = obj.get("context_id", obj.get("contextId"))
            cid = _SINGLE_CONTEXT if raw_id is None else wire.context_id(raw_id, "context_id")
            if wire.optional_bool(obj, "close_context"):
                return self._close_context(cid)
        elif self._ended:
            raise ProtocolError(ErrorCode.CONTEXT_ENDED, "the text has ended ({'text': ''})")
        messages: list[ClientMessage] = []
        ctx = self._contexts.get(cid)
        if ctx is None:
            if not self.multi and text == "":
                raise wire.invalid("the first message must be {'text': ' '}")
            if self._closing:
                raise wire.invalid("close_socket was sent: no new context", cid)
            messages.append(StartMessage(cid, self._options(obj)))
            ctx = self._contexts[cid] = _Context()
            if text is not None and not text.strip():
                text = None  # the opening " " carries no text
        if text == "" and not self.multi:
            messages.append(EndMessage(cid))
            ctx.ending = self._ended = True
            return Inbound(messages=messages)
        if text:
            messages.append(TextMessage(cid, text))
            ctx.flushed = False
        if flush or (text and self.settings.auto_mode):
            messages.append(FlushMessage(cid))
            ctx.flushed = True
        return Inbound(messages=messages)

    def _options(self, obj: Mapping[str, Any]) -> dict[str, Value]:
        s = self.settings
        options: dict[str, Value] = {
            "voice": s.voice,
            "encoding": s.encoding,
            "sample_rate_hz": s.sample_rate_hz,
        }
        if s.bit_rate_kbps is not None:
            options["bit_rate_kbps"] = s.bit_rate_kbps
        if s.alignment:
            options["alignment"] = True
        voice_settings = obj.get("voice_settings")
        if isinstance(voice_settings, dict):
            speed = wire.optional_number(voice_settings, "speed")
            if speed is not None:
                options["speed"] = min(4.0, max(0.25, speed))
        config = obj.get("generation_config")
        schedule = config.get("chunk_length_schedule") if isinstance(config, dict) else None
        if isinstance(schedule, list) and schedule:
            first = schedule[0]
            if isinstance(first, int | float) and not isinstance(first, bool):
                options["chunk_size"] = int(min(5000, max(1, first)))
        return options

    def _close_context(self, cid: str) -> Inbound:
        ctx = self._contexts.get(cid)
        if ctx is None or ctx.ending:
            return Inbound()
        ctx.ending = True
        if ctx.flushed:  # its audio was asked for: let it finish
            return Inbound(messages=(EndMessage(cid),))
        return Inbound(messages=(CancelMessage(cid),))

    def _close_socket(self) -> Inbound:
        self._closing = True
        ending = [cid for cid, ctx in self._contexts.items() if not ctx.ending]
        for cid in ending:
            self._contexts[cid].ending = True
        if not self._contexts:
            return Inbound(replies=(CloseSocket(),))
        return Inbound(messages=tuple(EndMessage(cid) for cid in ending))

    # --- outbound ---------------------------------------------------------------------

    def event(self, message: ServerMessage) -> list[Frame]:
        if isinstance(message, Alignment):
            ctx = self._contexts.get(message.context)
            if ctx is not None:
                ctx.words += message.words
            return []
        if isinstance(message, Done | Cancelled):
            return self._final(message.context)
        if isinstance(message, ErrorMessage):
            return [self._json({"message": message.message, "error": message.code, "code": 1008})]
        return []

    def _final(self, cid: str) -> list[Frame]:
        if self._contexts.pop(cid, None) is None:
            return []
        if not self.multi:
            return [self._json({"isFinal": True}), CloseSocket()]
        frames: list[Frame] = [self._json({"isFinal": True, "contextId": cid})]
        if self._closing and not self._contexts:
            frames.append(CloseSocket())
        return frames

    def audio(self, payload: AudioPayload) -> list[Frame]:
        ctx = self._contexts.get(payload.context)
        alignment = None
        if ctx is not None and ctx.words:
            alignment = characters(ctx.words, payload.start_ms)
            ctx.words = []
        body: dict[str, Any] = {
            "audio": wire.b64(payload.data),
            "isFinal": None,
            "normalizedAlignment": alignment,
            "alignment": alignment,
        }
        if self.multi:
            body["contextId"] = payload.context
        return [self._json(body)]

    @staticmethod
    def _json(body: dict[str, Any]) -> str:
        return encode_json(body)


def characters(words: list[dict[str, Any]], chunk_start_ms: float) -> dict[str, list[Any]]:
    """ElevenLabs' character arrays for one chunk's words, in ms from ``chunk_start_ms``."""
    chars: list[str] = []
    starts: list[int] = []
    durations: list[int] = []
    previous_end_ms: float | None = None
    for word in words:
        start_ms = float(word["start_ms"])
        if previous_end_ms is not None:  # the space between two words: the gap
            chars.append(" ")
            starts.append(round(previous_end_ms - chunk_start_ms))
            durations.append(max(0, round(start_ms - previous_end_ms)))
        text = str(word["word"])
        share_ms = float(word["duration_ms"]) / max(1, len(text))
        for i, ch in enumerate(text):
            chars.append(ch)
            starts.append(max(0, round(start_ms + i * share_ms - chunk_start_ms)))
            durations.append(round(share_ms))
        previous_end_ms = start_ms + float(word["duration_ms"])
    return {"chars": chars, "charStartTimesMs": starts, "charDurationsMs": durations}


# --- the endpoints ------------------------------------------------------------------------


class _InputClock:
    """A socket's ASGI ``receive`` that gives up waiting after ``inactivity_timeout``.

    While the dialect awaits text, a wait longer than the timeout returns, once, a
    frame that carries only ``_INPUT_TIMED_OUT`` (the dialect answers it with the
    close); the wait for the client's message is cancelled (uvicorn's receive is a
    queue, safe to cancel) and the next call waits again, untimed."""

    def __init__(self, receive: Receive, timeout_s: float, dialect: ElevenLabsDialect) -> None:
        self._receive = receive
        self._timeout_s = timeout_s
        self._dialect = dialect
        self._connected = False
        self._expired = False

    async def __call__(self) -> Message:
        if not self._connected or self._expired or not self._dialect.awaiting_text:
            self._connected = True  # the first message is the handshake's
            return await self._receive()
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._receive()
        except TimeoutError:
            self._expired = True
            return {"type": "websocket.receive", "text": None, _INPUT_TIMED_OUT: self._timeout_s}


def _flag(websocket: WebSocket, name: str) -> bool | ProtocolError:
    value = websocket.query_params.get(name, "false").lower()
    if value not in ("true", "false"):
        return wire.invalid(f"{name} must be true or false, not {value!r}")
    return value == "true"


def _timeout_s(websocket: WebSocket) -> float | ProtocolError:
    raw = websocket.query_params.get("inactivity_timeout")
    if raw is None:
        return DEFAULT_INACTIVITY_TIMEOUT_S
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_INACTIVITY_TIMEOUT_S:
        return wire.invalid(
            f"inactivity_timeout must be a whole number of seconds from 1 to "
            f"{MAX_INACTIVITY_TIMEOUT_S}, not {raw!r}"
        )
    return int(raw)


def _settings(websocket: WebSocket, runtime: Runtime) -> StreamSettings | ProtocolError:
    voice = runtime.voice_map.resolve(websocket.path_params.get("voice_id"))
    if voice is None:
        return ProtocolError(
            ErrorCode.UNKNOWN_VOICE,
            f"A voice with voice_id {websocket.path_params['voice_id']!r} was not found.",
        )
    voice_rate_hz = runtime.session_config.voices[voice]
    name = websocket.query_params.get("output_format") or DEFAULT_OUTPUT_FORMAT
    fmt = parse_output_format(name, voice_rate_hz)
    if fmt is None:
        return ProtocolError(
            ErrorCode.UNSUPPORTED_ENCODING,
            f"output_format {name!r} is not supported by this server",
        )
    auto_mode = _flag(websocket, "auto_mode")
    if isinstance(auto_mode, ProtocolError):
        return auto_mode
    timeout_s = _timeout_s(websocket)
    if isinstance(timeout_s, ProtocolError):
        return timeout_s
    word_timings = runtime.engine.capabilities.word_timings
    encoding, rate_hz, bit_rate_kbps = fmt
    return StreamSettings(
        voice, encoding, rate_hz, word_timings, auto_mode, timeout_s, bit_rate_kbps
    )


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """An ASGI endpoint (not a function: its socket's ``receive`` is the input clock)."""

    multi: bool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        runtime: Runtime = websocket.app.state.runtime
        settings = _settings(websocket, runtime)
        if isinstance(settings, ProtocolError):
            await websocket.accept()
            dialect = ElevenLabsDialect(StreamSettings("", "", 0, False), self.multi)
            await send_refusal(websocket, dialect, settings, CloseCode.POLICY_VIOLATION)
            return
        dialect = ElevenLabsDialect(settings, self.multi)
        clock = _InputClock(receive, settings.inactivity_timeout_s, dialect)
        await serve_websocket(WebSocket(scope, clock, send), dialect)


stream_input = _Endpoint(multi=False)
multi_stream_input = _Endpoint(multi=True)


def routes() -> list[BaseRoute]:
    return [
        WebSocketRoute("/v1/text-to-speech/{voice_id}/stream-input", stream_input),
        WebSocketRoute("/v1/text-to-speech/{voice_id}/multi-stream-input", multi_stream_input),
    ]
