"""Cartesia's bytes endpoint: ``POST /tts/bytes``, the audio streamed as it is synthesized.

The JSON body (``model_id``, ``transcript``, ``voice`` as ``{"mode": "id", "id": ...}`` or
an id, ``output_format``) is one native context. ``output_format.container`` ``raw`` or
``wav`` with ``encoding`` ``pcm_s16le`` / ``pcm_f32le`` / ``pcm_mulaw`` / ``pcm_alaw`` at
``sample_rate``, or ``mp3`` at ``sample_rate`` and ``bit_rate`` (b/s, one LAME makes at
that rate: 32000 to 320000 at 44100 Hz; without it, the server's default).
``speed`` (``slowest`` ... ``fastest``, or -1..1) and ``generation_config`` (``speed``,
``volume``) set the rate and gain; ``language``, ``locale``, ``normalization`` and
Cartesia's other fields are accepted and ignored. The voice id goes through
``runtime.voice_map``. Errors are Cartesia's ``{"error_code", "title", "message",
"request_id"}``.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from speakstream.protocol.errors import ErrorCode, ProtocolError
from speakstream.server.compat.containers import dialect_for
from speakstream.server.compat.http_bridge import (
    SpeechRequest,
    VendorError,
    http_status,
    read_json,
    stream_speech,
)
from speakstream.server.runtime import Runtime

RAW_ENCODINGS = {
    "pcm_s16le": "pcm_s16le",
    "pcm_f32le": "pcm_f32le",
    "pcm_mulaw": "mulaw",
    "pcm_alaw": "alaw",
}
SPEEDS = {"slowest": 0.7, "slow": 0.85, "normal": 1.0, "fast": 1.2, "fastest": 1.4}
_FIELDS = frozenset(
    {
        "model_id",
        "transcript",
        "voice",
        "output_format",
        "language",
        "locale",
        "normalization",
        "pronunciation_dict_id",
        "save",
        "speed",
        "generation_config",
        "duration",
        "context_id",
    }
)
_TITLES = {400: "Bad request", 404: "Not found", 429: "Too many requests", 503: "Unavailable"}


def error(status: int, code: str, message: str) -> VendorError:
    body = {
        "error_code": code,
        "title": _TITLES.get(status, "Error"),
        "message": message,
        "request_id": str(uuid.uuid4()),
    }
    return VendorError(status, body)


def refuse(err: ProtocolError) -> VendorError:
    code = {ErrorCode.TOO_MANY_CONNECTIONS: "concurrency_limited"}.get(err.code, str(err.code))
    return error(http_status(err.code), code, err.message)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise error(400, "invalid_request", f"'{name}' must be a number")
    return float(value)


def _speed(body: dict[str, Any]) -> float | None:
    config = body.get("generation_config") or {}
    if not isinstance(config, dict):
        raise error(400, "invalid_request", "'generation_config' must be an object")
    if config.get("speed") is not None:
        return _number(config["speed"], "generation_config.speed")
    speed = body.get("speed")
    if speed is None:
        return None
    if isinstance(speed, str):
        if speed not in SPEEDS:
            raise error(400, "invalid_request", f"'speed' must be one of {', '.join(SPEEDS)}")
        return SPEEDS[speed]
    number = _number(speed, "speed")
    if not -1.0 <= number <= 1.0:
        raise error(400, "invalid_request", "a numeric 'speed' must be from -1 to 1")
    return 1.0 + 0.5 * number if number < 0 else 1.0 + number


def _parse(body: Any, runtime: Runtime) -> tuple[SpeechRequest, str, str | None]:
    """The request, its Content-Type, and the raw encoding to wrap in WAV (or None)."""
    if not isinstance(body, dict):
        raise error(400, "invalid_request", "the body must be a JSON object")
    for name in body:
        if name not in _FIELDS:
            raise error(400, "invalid_request", f"unknown field {name!r}")
    for name in ("model_id", "transcript", "voice", "output_format"):
        if body.get(name) is None:
            raise error(400, "invalid_request", f"'{name}' is required")
    text = body["transcript"]
    if not isinstance(text, str) or not text.strip():
        raise error(400, "invalid_request", "'transcript' must be a non-empty string")
    voice_spec = body["voice"]
    voice_id = voice_spec.get("id") if isinstance(voice_spec, dict) else voice_spec
    if not isinstance(voice_id, str):
        raise error(400, "invalid_request", '\'voice\' must be {"mode": "id", "id": ...}')
    voice = runtime.voice_map.resolve(voice_id)
    if voice is None:
        raise error(404, "voice_not_found", f"Voice {voice_id!r} was not found")
    fmt = body["output_format"]
    if not isinstance(fmt, dict):
        raise error(400, "invalid_request", "'output_format' must be an object")
    container = fmt.get("container")
    rate = fmt.get("sample_rate")
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise error(400, "invalid_request", "'output_format.sample_rate' must be an integer")
    wrap: str | None = None
    options: dict[str, Any] = {"voice": voice, "sample_rate_hz": rate}
    if container == "mp3":
        encoding, content_type = "mp3", "audio/mpeg"
        bit_rate = fmt.get("bit_rate")
        if bit_rate is not None:
            if isinstance(bit_rate, bool) or not isinstance(bit_rate, int) or bit_rate % 1000:
                raise error(
                    400, "invalid_request", "'output_format.bit_rate' must be a whole kb/s in b/s"
                )
            options["bit_rate_kbps"] = bit_rate // 1000
    elif container in ("raw", "wav"):
        name = fmt.get("encoding")
        if name not in RAW_ENCODINGS:
            raise error(
                400,
                "invalid_request",
                f"'output_format.encoding' must be one of {', '.join(RAW_ENCODINGS)}",
            )
        encoding = RAW_ENCODINGS[name]
        if container == "wav":
            wrap, content_type = encoding, "audio/wav"
        else:
            content_type = "application/octet-stream"
    else:
        raise error(400, "invalid_request", "'output_format.container' must be raw, wav or mp3")
    options["encoding"] = encoding
    speed = _speed(body)
    if speed is not None:
        options["speed"] = speed
    config = body.get("generation_config") or {}
    if config.get("volume") is not None:
        options["volume"] = _number(config["volume"], "generation_config.volume")
    return SpeechRequest(text, options), content_type, wrap


async def tts_bytes(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        body = await read_json(
            request,
            runtime.settings.max_message_bytes,
            lambda message: error(400, "invalid_request", message),
        )
        speech, content_type, wrap = _parse(body, runtime)
    except VendorError as refusal:
        return refusal.response()
    dialect = dialect_for(speech, wrap)
    return stream_speech(request, speech, dialect, media_type=content_type, refuse=refuse)


def routes() -> list[BaseRoute]:
    return [Route("/tts/bytes", tts_bytes, methods=["POST"])]
