"""Deepgram's REST text-to-speech: ``POST /v1/speak?model=...&encoding=...&sample_rate=...``.

The JSON body ``{"text": ...}`` is one native context; the audio streams as it is
synthesized. The query names the voice (``model``, through ``runtime.voice_map``;
default ``aura-asteria-en``) and the audio as Deepgram defines it: ``encoding``
``linear16`` / ``mulaw`` / ``alaw`` (``container`` ``wav``, the default, or ``none``),
``mp3`` (the default), ``opus`` (Ogg), ``flac``, ``aac``; ``sample_rate`` (defaults:
24000 for linear16, 8000 for G.711, 22050 for mp3 and aac, 48000 for opus and flac);
``bit_rate`` (b/s, a whole number of kb/s) for ``mp3``, ``opus`` and ``aac`` (Deepgram's
own defaults are not copied: without it each codec makes the server's default; a bit
rate the codec cannot make at that rate is Deepgram's ``INVALID_QUERY_PARAMETER``; for
the other encodings it is ignored, as Deepgram does); ``tag``, ``mip_opt_out`` are
accepted and ignored, ``callback`` is refused
(this server does not call out). Responses carry ``dg-model-name``, ``dg-char-count`` and
``dg-request-id``; errors are Deepgram's ``{"err_code", "err_msg", "request_id"}``.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from speakstream.protocol.errors import ErrorCode, ProtocolError
from speakstream.protocol.options import Value
from speakstream.server.compat.containers import WAV_FORMATS, dialect_for
from speakstream.server.compat.http_bridge import (
    SpeechRequest,
    VendorError,
    http_status,
    read_json,
    stream_speech,
)
from speakstream.server.runtime import Runtime

DEFAULT_MODEL = "aura-asteria-en"
# Deepgram encoding -> (native encoding, default rate, containers (the first is the default))
ENCODINGS: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "linear16": ("pcm_s16le", 24000, ("wav", "none")),
    "mulaw": ("mulaw", 8000, ("wav", "none")),
    "alaw": ("alaw", 8000, ("wav", "none")),
    "mp3": ("mp3", 22050, ("none",)),
    "opus": ("opus", 48000, ("ogg",)),
    "flac": ("flac", 48000, ("none",)),
    "aac": ("aac", 22050, ("none",)),
}
_BIT_RATE_ENCODINGS = frozenset({"mp3", "opus", "aac"})
_CONTENT_TYPES = {
    "pcm_s16le": "audio/l16",
    "mulaw": "audio/basic",
    "alaw": "audio/x-alaw-basic",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "aac": "audio/aac",
}


def error(status: int, code: str, message: str) -> VendorError:
    body = {"err_code": code, "err_msg": message, "request_id": str(uuid.uuid4())}
    return VendorError(status, body)


def refuse(err: ProtocolError) -> VendorError:
    codes = {ErrorCode.TOO_MANY_CONNECTIONS: "TOO_MANY_REQUESTS"}
    status = http_status(err.code)
    if err.code is ErrorCode.TEXT_TOO_LONG:
        status = 413
    code = codes.get(err.code, "INVALID_QUERY_PARAMETER" if status == 400 else "REQUEST_ERROR")
    return error(status, code, err.message)


def _sample_rate(value: str | None, default_hz: int) -> int:
    if value is None:
        return default_hz
    try:
        rate = float(value)
    except ValueError:
        rate = -1.0
    if not rate.is_integer() or rate <= 0:
        raise error(400, "INVALID_QUERY_PARAMETER", f"sample_rate {value!r} is not a rate in Hz")
    return int(rate)


def _bit_rate_kbps(value: str | None, encoding: str) -> int | None:
    if value is None or encoding not in _BIT_RATE_ENCODINGS:
        return None
    try:
        bps = float(value)
    except ValueError:
        bps = -1.0
    if not bps.is_integer() or bps <= 0 or bps % 1000:
        raise error(
            400, "INVALID_QUERY_PARAMETER", f"bit_rate {value!r} is not a whole number of kb/s"
        )
    return int(bps) // 1000


def _parse(
    body: Any, query: dict[str, str], runtime: Runtime
) -> tuple[SpeechRequest, str, str | None]:
    """The request, its Content-Type, and the raw encoding to wrap in WAV (or None)."""
    if "callback" in query:
        raise error(400, "INVALID_QUERY_PARAMETER", "callback is not supported by this server")
    if not isinstance(body, dict):
        raise error(400, "INVALID_JSON", 'the body must be a JSON object {"text": ...}')
    unknown = sorted(set(body) - {"text"})
    if unknown:
        raise error(400, "INVALID_JSON", f"unknown field(s) in the body: {', '.join(unknown)}")
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise error(400, "INVALID_JSON", "the body needs a non-empty string 'text'")
    model = query.get("model") or DEFAULT_MODEL
    voice = runtime.voice_map.resolve(model)
    if voice is None:
        raise error(
            400,
            "INVALID_QUERY_PARAMETER",
            f"No such model/version/tier combination found: {model!r}",
        )
    name = query.get("encoding") or "mp3"
    if name not in ENCODINGS:
        raise error(
            400,
            "INVALID_QUERY_PARAMETER",
            f"encoding {name!r} is not supported; use one of {', '.join(ENCODINGS)}",
        )
    encoding, default_hz, containers = ENCODINGS[name]
    container = query.get("container") or containers[0]
    if container not in containers:
        raise error(
            400,
            "INVALID_QUERY_PARAMETER",
            f"container {container!r} does not go with encoding {name!r} "
            f"(use {' or '.join(containers)})",
        )
    rate_hz = _sample_rate(query.get("sample_rate"), default_hz)
    options: dict[str, Value] = {"voice": voice, "encoding": encoding, "sample_rate_hz": rate_hz}
    bit_rate_kbps = _bit_rate_kbps(query.get("bit_rate"), encoding)
    if bit_rate_kbps is not None:
        options["bit_rate_kbps"] = bit_rate_kbps
    wrap = encoding if container == "wav" and encoding in WAV_FORMATS else None
    content_type = "audio/wav" if wrap else _CONTENT_TYPES[encoding]
    return SpeechRequest(text, options), content_type, wrap


async def speak(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        body = await read_json(
            request,
            runtime.settings.max_message_bytes,
            lambda message: error(400, "INVALID_JSON", message),
        )
        speech, content_type, wrap = _parse(body, dict(request.query_params), runtime)
    except VendorError as refusal:
        return refusal.response()
    dialect = dialect_for(speech, wrap)
    headers = {
        "dg-model-name": request.query_params.get("model") or DEFAULT_MODEL,
        "dg-char-count": str(len(speech.text)),
        "dg-request-id": str(uuid.uuid4()),
    }
    return stream_speech(
        request, speech, dialect, media_type=content_type, refuse=refuse, headers=headers
    )


def routes() -> list[BaseRoute]:
    return [Route("/v1/speak", speak, methods=["POST"])]
