"""A WAV container around raw PCM, μ-law, A-law or float audio, for vendors that ask for one.

The native ``wav`` encoding is 16-bit PCM only; Cartesia and Deepgram also put μ-law,
A-law and 32-bit float audio in a WAV file. ``WavDialect`` sends the native raw encoding
and puts ``wav_header`` (sizes unknown, as for any streamed WAV) before its first byte.
"""

from __future__ import annotations

import struct

from speakstream.protocol.server_messages import Done
from speakstream.server.compat.http_bridge import HttpDialect, SpeechRequest
from speakstream.server.dialect import AudioPayload, Frame

# native raw encoding -> (WAVE format tag, bits per sample)
WAV_FORMATS: dict[str, tuple[int, int]] = {
    "pcm_s16le": (1, 16),
    "pcm_f32le": (3, 32),
    "alaw": (6, 8),
    "mulaw": (7, 8),
}


def wav_header(encoding: str, sample_rate_hz: int) -> bytes:
    """A mono WAV header for ``encoding`` (a key of ``WAV_FORMATS``), length unknown."""
    tag, bits = WAV_FORMATS[encoding]
    block = bits // 8
    unknown = 0xFFFFFFFF
    fmt = struct.pack("<HHIIHHH", tag, 1, sample_rate_hz, sample_rate_hz * block, block, bits, 0)
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVEfmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", unknown)
    )


class WavDialect(HttpDialect):
    """The body is a WAV file: its header first, then the raw audio as it comes."""

    def __init__(self, speech: SpeechRequest, encoding: str, sample_rate_hz: int) -> None:
        super().__init__(speech)
        self._header = wav_header(encoding, sample_rate_hz)

    def _take_header(self) -> list[Frame]:
        header, self._header = self._header, b""
        return [header] if header else []

    def on_audio(self, payload: AudioPayload) -> list[Frame]:
        return [*self._take_header(), payload.data]

    def on_done(self, message: Done) -> list[Frame]:
        return self._take_header()  # a valid (empty) file even without audio


def dialect_for(speech: SpeechRequest, wav_encoding: str | None) -> HttpDialect:
    """The body's dialect: a WAV file around ``wav_encoding``, or the payloads as they are."""
    if wav_encoding is None:
        return HttpDialect(speech)
    return WavDialect(speech, wav_encoding, int(speech.options["sample_rate_hz"]))
