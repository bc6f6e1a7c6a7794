"""ElevenLabs' HTTP streaming: ``POST /v1/text-to-speech/{voice_id}/stream`` and
``.../stream/with-timestamps``.

The JSON body (``text``, ``model_id``, ``voice_settings``, and ElevenLabs' other fields,
accepted and ignored; ``voice_settings.speed`` sets the speaking rate) is one native
context; ``output_format`` in the query picks the audio: ``pcm_{rate}`` (16-bit
little-endian), ``ulaw_8000``, ``alaw_8000``, ``wav_{rate}``, the ``mp3_{rate}_{kbps}``
ElevenLabs lists (``elevenlabs.MP3_FORMATS``, each made at its bit rate), default
``mp3_44100_128``; others (``opus_...``, ``mp3_16000_64``) are refused.
``stream`` sends the audio as it is synthesized; ``stream/with-timestamps`` sends
newline-delimited JSON chunks ``{"audio_base64", "alignment",
"normalized_alignment"}`` whose character timings (seconds from the start of the audio)
come from the engine's word timings: every character of the text appears once, in
order, those between words (spaces, punctuation) at the end of the word before.
Errors are ElevenLabs': ``{"detail": {"status", "message"}}``, and FastAPI's
``{"detail": [{"type", "loc", "msg"}]}`` (422) for a malformed body.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from speakstream.protocol.errors import ErrorCode, ProtocolError
from speakstream.protocol.server_messages import Alignment, Done, encode_json
from speakstream.server.compat.elevenlabs import MP3_FORMATS
from speakstream.server.compat.http_bridge import (
    HttpDialect,
    SpeechRequest,
    VendorError,
    http_status,
    read_json,
    stream_speech,
)
from speakstream.server.dialect import AudioPayload, Frame
from speakstream.server.runtime import Runtime

DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"
_FORMAT = re.compile(r"(pcm|ulaw|alaw|wav|mp3)_(\d+)(?:_(\d+))?")
_ENCODINGS = {"pcm": "pcm_s16le", "ulaw": "mulaw", "alaw": "alaw", "wav": "wav", "mp3": "mp3"}
_CONTENT_TYPES = {"pcm_s16le": "audio/pcm", "mulaw": "audio/basic", "alaw": "audio/x-alaw-basic"}
_FIELDS = frozenset(
    {
        "text",
        "model_id",
        "language_code",
        "voice_settings",
        "pronunciation_dictionary_locators",
        "seed",
        "previous_text",
        "next_text",
        "previous_request_ids",
        "next_request_ids",
        "use_pvc_as_ivc",
        "apply_text_normalization",
        "apply_language_text_normalization",
        "audio_effects",
    }
)
_STATUS = {
    ErrorCode.UNKNOWN_VOICE: "voice_not_found",
    ErrorCode.TEXT_TOO_LONG: "max_character_limit_exceeded",
    ErrorCode.UNSUPPORTED_SAMPLE_RATE: "invalid_output_format",
    ErrorCode.UNSUPPORTED_ENCODING: "invalid_output_format",
    ErrorCode.UNSUPPORTED_BIT_RATE: "invalid_output_format",
    ErrorCode.TOO_MANY_CONNECTIONS: "too_many_concurrent_requests",
    ErrorCode.SERVER_SHUTTING_DOWN: "system_busy",
}


def error(status: int, kind: str, message: str) -> VendorError:
    return VendorError(status, {"detail": {"status": kind, "message": message}})


def invalid(kind: str, loc: list[str], message: str) -> VendorError:
    return VendorError(422, {"detail": [{"type": kind, "loc": loc, "msg": message}]})


def refuse(err: ProtocolError) -> VendorError:
    return error(http_status(err.code), _STATUS.get(err.code, str(err.code)), err.message)


def output_format(name: str) -> tuple[str, int, int | None]:
    """The native encoding, rate and bit rate (kb/s; None: not mp3) for an ElevenLabs
    ``output_format``."""
    match = _FORMAT.fullmatch(name)
    if (
        match is None
        or (match[3] is not None) != (match[1] == "mp3")
        or (match[1] == "mp3" and (int(match[2]), int(match[3])) not in MP3_FORMATS)
    ):
        raise error(
            400,
            "invalid_output_format",
            f"output_format {name!r} is not offered here; use pcm_{{rate}}, ulaw_8000, "
            "alaw_8000, wav_{rate} or ElevenLabs' mp3_{rate}_{kbps}",
        )
    return _ENCODINGS[match[1]], int(match[2]), None if match[3] is None else int(match[3])


class TimestampsDialect(HttpDialect):
    """Each audio payload as one JSON line with the character timings that precede it."""

    def __init__(self, speech: SpeechRequest) -> None:
        super().__init__(speech)
        self._chars: list[tuple[str, float, float]] = []  # waiting for their audio
        self._next_offset = 0  # the first character of the text not yet timed
        self._last_end_s = 0.0

    def _upto(self, offset: int) -> None:
        """Characters before ``offset`` not in a word: at the end of what precedes them."""
        for ch in self.speech.text[self._next_offset : offset]:
            self._chars.append((ch, self._last_end_s, self._last_end_s))
        self._next_offset = max(self._next_offset, offset)

    def on_alignment(self, message: Alignment) -> list[Frame]:
        for char in message.chars:
            offset = int(char["offset"])
            if offset < self._next_offset:
                continue
            self._upto(offset)
            start_s = float(char["start_ms"]) / 1000
            end_s = start_s + float(char["duration_ms"]) / 1000
            self._chars.append((str(char["char"]), start_s, end_s))
            self._last_end_s = end_s
            self._next_offset = offset + 1
        return []

    def _line(self, audio: bytes) -> str:
        alignment: dict[str, Any] | None = None
        if self._chars:
            alignment = {
                "characters": [c for c, _, _ in self._chars],
                "character_start_times_seconds": [round(s, 3) for _, s, _ in self._chars],
                "character_end_times_seconds": [round(e, 3) for _, _, e in self._chars],
            }
            self._chars = []
        chunk = {
            "audio_base64": base64.b64encode(audio).decode("ascii"),
            "alignment": alignment,
            "normalized_alignment": alignment,
        }
        return encode_json(chunk) + "\n"

    def on_audio(self, payload: AudioPayload) -> list[Frame]:
        return [self._line(payload.data)]

    def on_done(self, message: Done) -> list[Frame]:
        self._upto(len(self.speech.text))
        return [self._line(b"")] if self._chars else []


def _parse(
    body: Any, voice_id: str, runtime: Runtime, fmt: str, *, timestamps: bool
) -> SpeechRequest:
    if not isinstance(body, dict):
        raise invalid("model_attributes_type", ["body"], "Input should be a valid dictionary")
    for name in body:
        if name not in _FIELDS:
            raise invalid("extra_forbidden", ["body", name], "Extra inputs are not permitted")
    text = body.get("text")
    if text is None:
        raise invalid("missing", ["body", "text"], "Field required")
    if not isinstance(text, str):
        raise invalid("string_type", ["body", "text"], "Input should be a valid string")
    if not text.strip():
        raise error(400, "empty_text", "the text is empty")
    voice = runtime.voice_map.resolve(voice_id)
    if voice is None:
        raise error(404, "voice_not_found", f"A voice with voice_id {voice_id!r} was not found.")
    encoding, rate_hz, bit_rate_kbps = output_format(fmt)
    options: dict[str, Any] = {"voice": voice, "encoding": encoding, "sample_rate_hz": rate_hz}
    if bit_rate_kbps is not None:
        options["bit_rate_kbps"] = bit_rate_kbps
    if timestamps:
        options["alignment"] = True
    settings = body.get("voice_settings") or {}
    if not isinstance(settings, dict):
        raise invalid("model_type", ["body", "voice_settings"], "Input should be an object")
    speed = settings.get("speed")
    if speed is not None:
        if isinstance(speed, bool) or not isinstance(speed, int | float):
            raise invalid(
                "float_type", ["body", "voice_settings", "speed"], "Input should be a number"
            )
        options["speed"] = float(speed)
    return SpeechRequest(text, options)


async def _stream(request: Request, *, timestamps: bool) -> Response:
    runtime: Runtime = request.app.state.runtime
    voice_id = request.path_params["voice_id"]
    fmt = request.query_params.get("output_format") or DEFAULT_OUTPUT_FORMAT
    try:
        body = await read_json(
            request,
            runtime.settings.max_message_bytes,
            lambda message: invalid("json_invalid", ["body"], message),
        )
        speech = _parse(body, voice_id, runtime, fmt, timestamps=timestamps)
    except VendorError as refusal:
        return refusal.response()
    if timestamps:
        dialect: HttpDialect = TimestampsDialect(speech)
        media_type = "application/x-ndjson"
    else:
        dialect = HttpDialect(speech)
        encoding = str(speech.options["encoding"])
        media_type = _CONTENT_TYPES.get(
            encoding, "audio/mpeg" if encoding == "mp3" else "audio/wav"
        )
    return stream_speech(request, speech, dialect, media_type=media_type, refuse=refuse)


async def stream(request: Request) -> Response:
    return await _stream(request, timestamps=False)


async def stream_with_timestamps(request: Request) -> Response:
    return await _stream(request, timestamps=True)


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/text-to-speech/{voice_id}/stream", stream, methods=["POST"]),
        Route(
            "/v1/text-to-speech/{voice_id}/stream/with-timestamps",
            stream_with_timestamps,
            methods=["POST"],
        ),
    ]
