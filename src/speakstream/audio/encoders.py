"""Encoders from ``PcmChunk`` to wire bytes. One encoder per context stream.

PCM encodings never split a sample: every payload is a whole number of samples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from speakstream.audio.pcm import PcmChunk


class UnsupportedFormatError(ValueError):
    """An encoding or sample rate this server cannot produce."""


class Encoder(Protocol):
    encoding: str
    sample_rate_hz: int

    def encode(self, chunk: PcmChunk) -> bytes: ...

    def finish(self) -> bytes: ...


class _PcmS16Encoder:
    encoding = "pcm_s16le"

    def __init__(self, sample_rate_hz: int) -> None:
        self.sample_rate_hz = sample_rate_hz

    def encode(self, chunk: PcmChunk) -> bytes:
        scaled = np.clip(chunk.samples, -1.0, 1.0) * 32767.0
        return bytes(np.rint(scaled).astype("<i2").tobytes())

    def finish(self) -> bytes:
        return b""


class _PcmF32Encoder:
    encoding = "pcm_f32le"

    def __init__(self, sample_rate_hz: int) -> None:
        self.sample_rate_hz = sample_rate_hz

    def encode(self, chunk: PcmChunk) -> bytes:
        return chunk.samples.astype("<f4").tobytes()

    def finish(self) -> bytes:
        return b""


ENCODINGS: dict[str, Callable[[int], Encoder]] = {
    "pcm_s16le": _PcmS16Encoder,
    "pcm_f32le": _PcmF32Encoder,
}

BYTES_PER_SAMPLE = {"pcm_s16le": 2, "pcm_f32le": 4}


def create_encoder(encoding: str, sample_rate_hz: int, engine_rate_hz: int) -> Encoder:
    """An encoder for ``encoding`` at ``sample_rate_hz``; raises ``UnsupportedFormatError``."""
    factory = ENCODINGS.get(encoding)
    if factory is None:
        known = ", ".join(sorted(ENCODINGS))
        raise UnsupportedFormatError(f"unknown encoding {encoding!r}; supported: {known}")
    if sample_rate_hz != engine_rate_hz:
        raise UnsupportedFormatError(
            f"sample rate {sample_rate_hz} Hz is not available; this voice speaks at "
            f"{engine_rate_hz} Hz"
        )
    return factory(sample_rate_hz)
