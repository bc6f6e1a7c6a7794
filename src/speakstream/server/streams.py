"""The audio streams of one connection: each context's resampler and encoder, and its frames.

``AudioStreams.encode`` turns one released chunk of a stream's PCM (or its end) into the
payloads to send, in order: resampled and encoded (in a worker thread when that is
heavy: a codec, or a resampler), each with the stream's segment and gap-free frame
number (the connection's dialect puts them into frames). A stream that never carried audio sends nothing at
its end (no frame on a stream that no ``segment`` event announced); a stream's tail
frames carry the number of its last announced segment. An encoder failure raises
``EncodingError``. The owner ``forget``s a stream after its end or a failure.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from speakstream.audio.pcm import PcmChunk
from speakstream.audio.pipeline import StreamPipeline
from speakstream.protocol.errors import EncodingError, ErrorCode
from speakstream.protocol.outputs import OpenStream
from speakstream.server.dialect import AudioPayload

_LOGGER = logging.getLogger(__name__)


@dataclass(slots=True)
class _Stream:
    context: str
    pipeline: StreamPipeline
    frames: int = 0
    segment: int = 0  # the segment the next frame belongs to
    had_audio: bool = False
    audio_ms: float = 0.0  # the stream's audio so far, before encoding


@dataclass(frozen=True, slots=True)
class StreamAudio:
    """Audio queued for a stream, encoded by the send loop in order.

    ``pcm`` None: the end of the stream, whose last announced segment is ``segment``
    (None: it announced none)."""

    pcm: PcmChunk | None
    segment: int | None


class AudioStreams:
    def __init__(self) -> None:
        self._streams: dict[int, _Stream] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def open(self, output: OpenStream) -> None:
        kbps = output.bit_rate_kbps
        pipeline = StreamPipeline(
            output.encoding,
            output.sample_rate_hz,
            output.voice_rate_hz,
            None if kbps is None else kbps * 1000,
        )
        self._streams[output.stream] = _Stream(output.context, pipeline)

    def forget(self, stream_id: int) -> bool:
        """No more audio of this stream will be encoded; False if it was not open."""
        return self._streams.pop(stream_id, None) is not None

    async def flush(self, stream_id: int) -> list[AudioPayload]:
        """What the stream's resampler still holds, before a ``flushed`` event."""
        stream = self._streams.get(stream_id)
        if stream is None or not stream.had_audio:
            return []
        pipeline = stream.pipeline
        try:
            data = await asyncio.to_thread(pipeline.flush) if pipeline.heavy else pipeline.flush()
        except Exception as exc:
            _LOGGER.warning(
                "flushing %s failed: %s: %s", pipeline.encoding, type(exc).__name__, exc
            )
            return []
        return self._payloads(stream_id, stream, data, stream.audio_ms)

    def _payloads(
        self, stream_id: int, stream: _Stream, data: list[bytes], start_ms: float
    ) -> list[AudioPayload]:
        encoded = []
        for payload in data:
            encoded.append(
                AudioPayload(
                    stream_id,
                    stream.context,
                    stream.segment,
                    stream.frames,
                    payload,
                    stream.pipeline.encoding,
                    stream.pipeline.sample_rate_hz,
                    start_ms=start_ms,
                )
            )
            stream.frames += 1
        return encoded

    async def encode(self, stream_id: int, audio: StreamAudio) -> list[AudioPayload]:
        """The payloads for ``audio`` of ``stream_id`` (none for a stream not open)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return []
        pipeline = stream.pipeline
        pcm = audio.pcm
        if pcm is None and not stream.had_audio:
            return []
        try:
            if pcm is None:
                payloads = (
                    await asyncio.to_thread(pipeline.finish)
                    if pipeline.heavy
                    else pipeline.finish()
                )
            elif pipeline.heavy:
                payloads = await asyncio.to_thread(pipeline.process, pcm)
            else:
                payloads = pipeline.process(pcm)
        except Exception as exc:
            _LOGGER.warning(
                "encoding %s failed: %s: %s", pipeline.encoding, type(exc).__name__, exc
            )
            raise EncodingError(
                ErrorCode.ENCODING_FAILED,
                f"encoding {pipeline.encoding} failed; this context's audio stops here",
                stream.context,
            ) from None
        if audio.segment is not None:
            stream.segment = audio.segment
        stream.had_audio = True
        start_ms = stream.audio_ms
        if pcm is not None:
            stream.audio_ms += pcm.duration_ms
        return self._payloads(stream_id, stream, payloads, start_ms)
