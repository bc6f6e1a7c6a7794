"""Output formats: which encodings exist, at which rates, and their encoders.

An encoder is fed ``PcmChunk``s of one context stream in order and returns the payloads
to send (each becomes one binary frame): PCM never splits a sample, compressed payloads
are whole pages/frames/packets, and every stream is decodable from its first payload.
``create_encoder`` makes a codec at the bit rate asked (``audio/bit_rates.py`` says which
it can make; anything else raises ``UnsupportedBitRateError``), or at its default.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from speakstream.audio import g711
from speakstream.audio.bit_rates import UnsupportedBitRateError, check_bit_rate_kbps
from speakstream.audio.pcm import PcmChunk, float_to_int16
from speakstream.protocol.errors import SpeakstreamError

# The rates every PCM-like encoding can be resampled to (plus the voice's own rate).
SAMPLE_RATES_HZ = frozenset({8000, 16000, 22050, 24000, 32000, 44100, 48000})


class UnsupportedFormatError(SpeakstreamError, ValueError):
    """An encoding or sample rate this server cannot produce."""


class Encoder(Protocol):
    encoding: str
    sample_rate_hz: int

    def encode(self, chunk: PcmChunk) -> list[bytes]: ...

    def finish(self) -> list[bytes]: ...


def _pcm16(chunk: PcmChunk) -> bytes:
    return bytes(float_to_int16(chunk.samples).astype("<i2", copy=False).tobytes())


class _Stateless:
    encoding = ""

    def __init__(self, sample_rate_hz: int) -> None:
        self.sample_rate_hz = sample_rate_hz

    def convert(self, chunk: PcmChunk) -> bytes:
        raise NotImplementedError

    def encode(self, chunk: PcmChunk) -> list[bytes]:
        data = self.convert(chunk)
        return [data] if data else []

    def finish(self) -> list[bytes]:
        return []


class PcmS16Encoder(_Stateless):
    encoding = "pcm_s16le"

    def convert(self, chunk: PcmChunk) -> bytes:
        return _pcm16(chunk)


class PcmF32Encoder(_Stateless):
    encoding = "pcm_f32le"

    def convert(self, chunk: PcmChunk) -> bytes:
        return bytes(chunk.samples.astype("<f4").tobytes())


class MulawEncoder(_Stateless):
    encoding = "mulaw"

    def convert(self, chunk: PcmChunk) -> bytes:
        return g711.mulaw_encode(chunk.samples)


class AlawEncoder(_Stateless):
    encoding = "alaw"

    def convert(self, chunk: PcmChunk) -> bytes:
        return g711.alaw_encode(chunk.samples)


def wav_header(sample_rate_hz: int) -> bytes:
    """A 16-bit mono WAV header for a stream of unknown length (sizes 0xFFFFFFFF)."""
    unknown = 0xFFFFFFFF
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate_hz, sample_rate_hz * 2, 2, 16)
        + b"data"
        + struct.pack("<I", unknown)
    )


class WavEncoder:
    """One header for the whole context, then 16-bit PCM: a WAV file as it is streamed."""

    encoding = "wav"

    def __init__(self, sample_rate_hz: int) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._started = False

    def _header(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return wav_header(self.sample_rate_hz)

    def encode(self, chunk: PcmChunk) -> list[bytes]:
        data = self._header() + _pcm16(chunk)
        return [data] if data else []

    def finish(self) -> list[bytes]:
        header = self._header()
        return [header] if header else []


@dataclass(frozen=True, slots=True)
class FormatSpec:
    encoding: str
    # (sample rate in Hz[, bit rate in b/s]): only codecs with a bit rate take the second
    factory: Callable[..., Encoder]
    rates_hz: frozenset[int] | None  # None: SAMPLE_RATES_HZ and the voice's own rate
    default_rate_hz: int | None  # None: the voice's own rate
    content_type: str
    heavy: bool  # encode in a worker thread, not on the event loop
    bytes_per_sample: int | None = None  # PCM-like payloads; None: compressed
    suffixes: tuple[str, ...] = ()  # file names that hold this format (".wav"), lower case


def _lazy(module: str, name: str) -> Callable[..., Encoder]:
    def make(sample_rate_hz: int, bit_rate_bps: int | None = None) -> Encoder:
        import importlib

        codec = getattr(importlib.import_module(module), name)
        encoder: Encoder = codec(sample_rate_hz, bit_rate_bps)
        return encoder

    return make


_OPUS_RATES = frozenset({8000, 12000, 16000, 24000, 48000})
_MP3_RATES = frozenset({8000, 16000, 22050, 24000, 44100, 48000})
_TELEPHONY_RATES = frozenset({8000, 16000})
_CODECS = "speakstream.audio.codecs"

FORMATS: dict[str, FormatSpec] = {
    spec.encoding: spec
    for spec in (
        FormatSpec(
            "pcm_s16le",
            PcmS16Encoder,
            None,
            None,
            "audio/pcm;encoding=s16le",
            False,
            2,
            (".pcm", ".raw", ".s16"),
        ),
        FormatSpec(
            "pcm_f32le", PcmF32Encoder, None, None, "audio/pcm;encoding=f32le", False, 4, (".f32",)
        ),
        FormatSpec(
            "mulaw",
            MulawEncoder,
            _TELEPHONY_RATES,
            8000,
            "audio/basic",
            False,
            1,
            (".ulaw", ".mulaw"),
        ),
        FormatSpec(
            "alaw", AlawEncoder, _TELEPHONY_RATES, 8000, "audio/x-alaw-basic", False, 1, (".alaw",)
        ),
        FormatSpec("wav", WavEncoder, None, None, "audio/wav", False, 2, (".wav",)),
        FormatSpec(
            "opus",
            _lazy(_CODECS, "OggOpusEncoder"),
            _OPUS_RATES,
            48000,
            "audio/ogg;codecs=opus",
            True,
            suffixes=(".ogg", ".opus"),
        ),
        FormatSpec(
            "opus_packets",
            _lazy(_CODECS, "OpusPacketEncoder"),
            _OPUS_RATES,
            48000,
            "audio/opus",
            True,
        ),
        FormatSpec(
            "mp3",
            _lazy(_CODECS, "Mp3Encoder"),
            _MP3_RATES,
            None,
            "audio/mpeg",
            True,
            suffixes=(".mp3",),
        ),
        FormatSpec(
            "aac", _lazy(_CODECS, "AdtsAacEncoder"), None, None, "audio/aac", True, None, (".aac",)
        ),
        FormatSpec(
            "flac", _lazy(_CODECS, "FlacEncoder"), None, None, "audio/flac", True, None, (".flac",)
        ),
    )
}
ENCODINGS = tuple(FORMATS)


def _spec(encoding: str) -> FormatSpec:
    spec = FORMATS.get(encoding)
    if spec is None:
        raise UnsupportedFormatError(
            f"unknown encoding {encoding!r}; supported: {', '.join(ENCODINGS)}"
        )
    return spec


def encoding_for_suffix(suffix: str) -> str | None:
    """The encoding a file suffix (".mp3", any case) names, or None when none does."""
    wanted = suffix.lower()
    return next((spec.encoding for spec in FORMATS.values() if wanted in spec.suffixes), None)


def allowed_rates_hz(encoding: str, voice_rate_hz: int) -> frozenset[int]:
    spec = FORMATS[encoding]
    if spec.rates_hz is not None:
        return spec.rates_hz
    return SAMPLE_RATES_HZ | {voice_rate_hz}


def resolve_rate_hz(encoding: str, requested_hz: int | None, voice_rate_hz: int) -> int:
    """The output rate for ``encoding``; raises ``UnsupportedFormatError``."""
    spec = _spec(encoding)
    allowed = allowed_rates_hz(encoding, voice_rate_hz)
    if requested_hz is None:
        default = spec.default_rate_hz or voice_rate_hz
        return default if default in allowed else max(allowed)
    if requested_hz not in allowed:
        rates = ", ".join(str(r) for r in sorted(allowed))
        raise UnsupportedFormatError(
            f"{encoding} cannot be sent at {requested_hz} Hz; it takes {rates} Hz"
        )
    return requested_hz


def create_encoder(encoding: str, sample_rate_hz: int, bit_rate_bps: int | None = None) -> Encoder:
    """An encoder of ``encoding`` at ``sample_rate_hz``, made at ``bit_rate_bps`` (a whole
    number of kb/s the codec can make at that rate) or, None, at the codec's default.
    Raises ``UnsupportedFormatError`` / ``UnsupportedBitRateError``."""
    spec = _spec(encoding)
    if bit_rate_bps is None:
        return spec.factory(sample_rate_hz)
    kbps, rest = divmod(bit_rate_bps, 1000)
    if rest:
        raise UnsupportedBitRateError(f"{bit_rate_bps} b/s is not a whole number of kb/s")
    check_bit_rate_kbps(encoding, sample_rate_hz, kbps)
    return spec.factory(sample_rate_hz, bit_rate_bps)
