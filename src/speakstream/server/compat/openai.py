"""OpenAI's speech API: ``POST /v1/audio/speech``, ``GET /v1/models``, ``GET /v1/audio/voices``.

A request (``model``, ``input``, ``voice``, ``response_format``, ``speed``,
``instructions``, ``stream_format``) is one context of the native core; its audio streams
as it is synthesized, in the body as it is (``stream_format: "audio"``, the default) or as
Server-Sent Events (``"sse"``: ``speech.audio.delta`` with base64 audio, then
``speech.audio.done`` with usage). Formats as OpenAI defines them, all at 24 kHz mono:
``mp3``, ``opus`` (Ogg), ``aac`` (ADTS), ``flac``, ``wav``, ``pcm`` (16-bit little-endian,
no header). ``model`` is any string (every model speaks with this server's engine);
``instructions`` is accepted and ignored, and the response says so in the
``X-Speakstream-Ignored`` header. Voices: ``runtime.voice_map`` (OpenAI's names speak the
default voice unless mapped, or are refused when ``accept_unknown_voices`` is off).
Errors are OpenAI's: ``{"error": {"message", "type", "param", "code"}}`` with its status.
"""

from __future__ import annotations

import base64
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from speakstream.protocol.errors import ErrorCode, ProtocolError
from speakstream.protocol.options import Value
from speakstream.protocol.server_messages import Done, ErrorMessage, encode_json
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

SAMPLE_RATE_HZ = 24000  # every OpenAI format
# response_format -> (native encoding, Content-Type)
FORMATS: dict[str, tuple[str, str]] = {
    "mp3": ("mp3", "audio/mpeg"),
    "opus": ("opus", "audio/ogg"),
    "aac": ("aac", "audio/aac"),
    "flac": ("flac", "audio/flac"),
    "wav": ("wav", "audio/wav"),
    "pcm": ("pcm_s16le", "audio/pcm"),
}
MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
_FIELDS = frozenset(
    {"model", "input", "voice", "response_format", "speed", "instructions", "stream_format"}
)
_OUTPUT_TOKENS_PER_S = 50  # usage is an estimate: nothing here counts real tokens


def error(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> VendorError:
    kind = {429: "rate_limit_exceeded", 404: "invalid_request_error"}.get(status)
    kind = kind or ("server_error" if status >= 500 else "invalid_request_error")
    return VendorError(
        status, {"error": {"message": message, "type": kind, "param": param, "code": code}}
    )


def refuse(err: ProtocolError) -> VendorError:
    param = {ErrorCode.TEXT_TOO_LONG: "input", ErrorCode.UNKNOWN_VOICE: "voice"}.get(err.code)
    status = 400 if err.code is ErrorCode.UNKNOWN_VOICE else http_status(err.code)
    return error(status, err.message, param=param, code=str(err.code))


class SseDialect(HttpDialect):
    """Each audio payload as a ``speech.audio.delta`` event; ``speech.audio.done`` last."""

    def on_audio(self, payload: AudioPayload) -> list[Frame]:
        audio = base64.b64encode(payload.data).decode("ascii")
        return [_sse({"type": "speech.audio.delta", "audio": audio})]

    def on_done(self, message: Done) -> list[Frame]:
        metrics = message.metrics
        input_tokens = math.ceil(int(metrics.get("characters", 0)) / 4)
        output_tokens = math.ceil(float(metrics.get("audio_ms", 0)) / 1000 * _OUTPUT_TOKENS_PER_S)
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        }
        return [_sse({"type": "speech.audio.done", "usage": usage})]

    def on_error(self, message: ErrorMessage) -> list[Frame]:
        body = {"message": message.message, "type": "server_error", "code": message.code}
        return [_sse({"type": "error", "error": body})]


def _sse(event: dict[str, Any]) -> str:
    return f"data: {encode_json(event)}\n\n"


def _parse(body: Any, runtime: Runtime) -> tuple[SpeechRequest, str, str, dict[str, str]]:
    """The request, its native encoding, its stream format and the response headers."""
    if not isinstance(body, dict):
        raise error(400, "The request body must be a JSON object.")
    for name in body:
        if name not in _FIELDS:
            raise error(
                400,
                f"Unrecognized request argument supplied: {name}",
                param=name,
                code="unknown_parameter",
            )
    for name in ("model", "input", "voice"):
        if body.get(name) is None:
            raise error(
                400,
                f"Missing required parameter: '{name}'.",
                param=name,
                code="missing_required_parameter",
            )
    text, model = body["input"], body["model"]
    if not isinstance(model, str) or not model:
        raise error(400, "'model' must be a non-empty string.", param="model", code="invalid_type")
    if not isinstance(text, str) or not text.strip():
        raise error(400, "'input' must be a non-empty string.", param="input", code="invalid_type")
    voice_id = body["voice"]
    if isinstance(voice_id, dict):
        voice_id = voice_id.get("id")
    voice = runtime.voice_map.resolve(voice_id) if isinstance(voice_id, str) else None
    if voice is None:
        choices = ", ".join(sorted(voice_names(runtime)))
        raise error(
            400,
            f"Invalid value: {voice_id!r}. Supported values are: {choices}.",
            param="voice",
            code="invalid_value",
        )
    fmt = body.get("response_format") or "mp3"
    if fmt not in FORMATS:
        raise error(
            400,
            f"Invalid value: {fmt!r}. Supported values are: {', '.join(FORMATS)}.",
            param="response_format",
            code="invalid_value",
        )
    stream_format = body.get("stream_format") or "audio"
    if stream_format not in ("audio", "sse"):
        raise error(
            400,
            f"Invalid value: {stream_format!r}. Supported values are: 'audio' and 'sse'.",
            param="stream_format",
            code="invalid_value",
        )
    speed = body.get("speed", 1.0)
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
        raise error(
            400, "'speed' must be a number from 0.25 to 4.0.", param="speed", code="invalid_value"
        )
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise error(400, "'instructions' must be a string.", param="instructions")
    headers = {"X-Speakstream-Ignored": "instructions"} if instructions else {}
    encoding, content_type = FORMATS[fmt]
    options: dict[str, Value] = {
        "voice": voice,
        "encoding": encoding,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "speed": float(speed),
    }
    return SpeechRequest(text, options), content_type, stream_format, headers


async def speech(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    try:
        body = await read_json(
            request,
            runtime.settings.max_message_bytes,
            lambda message: error(
                400, f"We could not parse the JSON body of your request: {message}"
            ),
        )
        speech_request, content_type, stream_format, headers = _parse(body, runtime)
    except VendorError as refusal:
        return refusal.response()
    if stream_format == "sse":
        dialect: HttpDialect = SseDialect(speech_request)
        content_type = "text/event-stream"
    else:
        dialect = HttpDialect(speech_request)
    return stream_speech(
        request,
        speech_request,
        dialect,
        media_type=content_type,
        refuse=refuse,
        headers=headers,
    )


def voice_names(runtime: Runtime) -> list[str]:
    """Our voices and the vendor ids mapped to them."""
    return sorted(set(runtime.voice_map.voices) | set(runtime.voice_map.mapping))


async def models(request: Request) -> Response:
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "speakstream"} for m in MODELS]
    return JSONResponse({"object": "list", "data": data})


async def voices(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    mapping = runtime.voice_map.mapping
    data = [
        {"id": name, "name": name, "object": "voice", "speaks_as": mapping.get(name, name)}
        for name in voice_names(runtime)
    ]
    return JSONResponse(
        {"object": "list", "data": data, "accepts_any_voice": runtime.voice_map.accept_unknown}
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/v1/audio/speech", speech, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/audio/voices", voices, methods=["GET"]),
    ]
