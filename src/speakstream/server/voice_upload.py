"""``POST /v1/voices``: upload a short reference recording, get a cloned voice's name.

On only when the engine is Chatterbox and ``chatterbox.upload_dir`` is set (else the
route does not exist: 404). The body is the recording itself, in any format FFmpeg
decodes (WAV, FLAC, MP3, Ogg...; the Content-Type is not trusted). Limits, each a clear
400/413 with a stable error code: at most ``chatterbox.upload_max_bytes`` (the body is
not read past it), it must decode to audio, and last from ``MIN_UPLOAD_S`` to
``chatterbox.upload_max_s`` (decoding stops once past it). Decoding runs in a worker
thread. What is stored is not the client's bytes but the decoded audio, re-encoded as
16-bit mono WAV (at most 48 kHz), as ``<upload_dir>/<id>.wav`` under an id the server
chooses (``engines.chatterbox.uploads``); no client text becomes a path. At most
``MAX_STORED_UPLOADS`` are kept. The answer (201) is ``{"voice": "upload:<id>", "id",
"duration_ms", "sample_rate_hz"}``; ``voice`` is usable at once as ``start.voice`` on
``/v1/stream`` (it is added to the session's voices, as are the uploads already stored
when the app starts).
"""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from speakstream.audio.pcm import float_to_int16
from speakstream.engines.chatterbox.uploads import (
    new_upload_id,
    stored_upload_ids,
    upload_path,
    voice_name,
)
from speakstream.protocol.errors import ErrorCode, ProtocolError
from speakstream.protocol.server_messages import ErrorMessage

MIN_UPLOAD_S = 1.0
MAX_STORED_RATE_HZ = 48_000
MAX_STORED_UPLOADS = 1000
CLONED_VOICE_RATE_HZ = 24_000  # what the engine speaks an uploaded voice at


class UploadRefused(Exception):
    def __init__(self, status: int, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def routes(runtime: Any) -> list[BaseRoute]:
    """The upload route for ``runtime`` (none when uploads are off); registers the
    uploads already stored as voices of the native protocol."""
    settings = runtime.settings
    if runtime.engine.capabilities.engine != "chatterbox" or not settings.chatterbox_upload_dir:
        return []
    directory = Path(settings.chatterbox_upload_dir)
    for upload_id in stored_upload_ids(directory):
        runtime.session_config.voices[voice_name(upload_id)] = CLONED_VOICE_RATE_HZ

    async def upload(request: Request) -> JSONResponse:
        try:
            raw = await _read_body(request, settings.chatterbox_upload_max_bytes)
            if len(stored_upload_ids(directory)) >= MAX_STORED_UPLOADS:
                raise UploadRefused(507, ErrorCode.BUSY, "this server stores no more uploads")
            samples, rate_hz = await asyncio.to_thread(
                decode_recording, raw, settings.chatterbox_upload_max_s
            )
        except UploadRefused as refused:
            error = ProtocolError(refused.code, str(refused))
            return JSONResponse(ErrorMessage.of(error).to_dict(), status_code=refused.status)
        upload_id = new_upload_id()
        await asyncio.to_thread(store_recording, directory, upload_id, samples, rate_hz)
        runtime.session_config.voices[voice_name(upload_id)] = CLONED_VOICE_RATE_HZ
        return JSONResponse(
            {
                "voice": voice_name(upload_id),
                "id": upload_id,
                "duration_ms": round(1000 * samples.size / rate_hz),
                "sample_rate_hz": rate_hz,
            },
            status_code=201,
        )

    return [Route("/v1/voices", upload, methods=["POST"])]


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise UploadRefused(413, ErrorCode.INVALID_MESSAGE, f"upload over {max_bytes} bytes")
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > max_bytes:
            raise UploadRefused(413, ErrorCode.INVALID_MESSAGE, f"upload over {max_bytes} bytes")
        parts.append(part)
    if not size:
        raise UploadRefused(400, ErrorCode.INVALID_MESSAGE, "the body must be a recording")
    return b"".join(parts)


def decode_recording(raw: bytes, max_s: float) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate; ``UploadRefused`` if it is not audio, or
    shorter than ``MIN_UPLOAD_S`` or longer than ``max_s``."""
    import av  # here, not at import: 18 MB of the server's idle memory for a rare route

    try:
        with av.open(io.BytesIO(raw), mode="r") as container:
            if not container.streams.audio:
                raise UploadRefused(400, ErrorCode.INVALID_MESSAGE, "the upload has no audio")
            stream = container.streams.audio[0]
            rate_hz = min(int(stream.rate or MAX_STORED_RATE_HZ), MAX_STORED_RATE_HZ)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate_hz)
            parts: list[np.ndarray] = []
            total = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    part = out.to_ndarray().reshape(-1).astype(np.float32)
                    parts.append(part)
                    total += part.size
                if total > max_s * rate_hz:
                    raise UploadRefused(
                        400, ErrorCode.INVALID_MESSAGE, f"the recording is over {max_s:g} s"
                    )
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise UploadRefused(
            400, ErrorCode.INVALID_MESSAGE, "the upload is not a recording FFmpeg can decode"
        ) from exc
    samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    if samples.size < MIN_UPLOAD_S * rate_hz:
        raise UploadRefused(
            400, ErrorCode.INVALID_MESSAGE, f"the recording is under {MIN_UPLOAD_S:g} s"
        )
    if not np.all(np.isfinite(samples)) or float(np.max(np.abs(samples))) < 1e-4:
        raise UploadRefused(400, ErrorCode.INVALID_MESSAGE, "the recording is silent")
    return samples, rate_hz


def store_recording(directory: Path, upload_id: str, samples: np.ndarray, rate_hz: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = upload_path(directory, upload_id)
    partial = path.with_suffix(".part")
    with wave.open(str(partial), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes(float_to_int16(np.clip(samples, -1.0, 1.0)).tobytes())
    partial.replace(path)
    return path
