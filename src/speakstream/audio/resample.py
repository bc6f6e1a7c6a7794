"""Streaming sample-rate conversion (soxr), state kept across chunks and segments.

One resampler per context stream: segment seams stay continuous because the filter's
history carries over from one chunk to the next, exactly as if the whole stream had been
resampled at once.
"""

from __future__ import annotations

import numpy as np
import soxr

from speakstream.audio.pcm import FloatArray, PcmChunk


class StreamResampler:
    def __init__(self, in_rate_hz: int, out_rate_hz: int, quality: str = "HQ") -> None:
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self._stream = (
            None
            if in_rate_hz == out_rate_hz
            else soxr.ResampleStream(in_rate_hz, out_rate_hz, 1, dtype="float32", quality=quality)
        )

    @property
    def active(self) -> bool:
        return self._stream is not None

    def process(self, chunk: PcmChunk) -> PcmChunk:
        if chunk.sample_rate_hz != self.in_rate_hz:
            raise ValueError(
                f"chunk at {chunk.sample_rate_hz} Hz fed to a {self.in_rate_hz} Hz resampler"
            )
        if self._stream is None:
            return chunk
        out: FloatArray = self._stream.resample_chunk(chunk.samples)
        return PcmChunk(np.ascontiguousarray(out, dtype=np.float32), self.out_rate_hz)

    def finish(self) -> PcmChunk:
        """The samples still inside the filter (call once, at the end of the stream)."""
        if self._stream is None:
            return PcmChunk(np.zeros(0, dtype=np.float32), self.out_rate_hz)
        out: FloatArray = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        return PcmChunk(np.ascontiguousarray(out, dtype=np.float32), self.out_rate_hz)
