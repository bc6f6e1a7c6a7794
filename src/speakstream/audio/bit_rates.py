"""Bit rates of the compressed encodings: which a codec can make at an output rate.

``bit_rates_kbps(encoding, sample_rate_hz)`` is what a client may ask for (kb/s), or None
for an encoding that has no bit rate to choose (PCM, WAV, G.711, FLAC: their bit rate
follows from the sample rate). ``check_bit_rate_kbps`` raises ``UnsupportedBitRateError``
for anything else, naming what the encoding takes; ``session_check_bit_rate`` is the same
rule for the session core (``SessionConfig.check_bit_rate``), raising ``ProtocolError``
(``unsupported_bit_rate``). ``DEFAULT_BIT_RATES_KBPS`` is what each codec makes when no
bit rate is asked (the codecs take it from here).

* MP3 (LAME): the standard Layer III steps. MPEG-1 (32, 44.1, 48 kHz) 32-320 kb/s,
  MPEG-2 (16, 22.05, 24 kHz) 8-160, MPEG-2.5 (8, 11.025, 12 kHz) 8-64. LAME would
  silently round any other value to a step, so it is refused instead.
* Opus: 6-256 kb/s at any of its rates (Opus goes to 510 kb/s in stereo; libavcodec's
  libopus wrapper refuses more than 256 kb/s per channel, and our streams are mono).
* AAC (libavcodec's own encoder): 8 kb/s up to 4 bits per sample of the output rate
  (32 kb/s at 8 kHz, 192 kb/s at 48 kHz). It accepts up to 6 bits per sample but,
  measured, makes no more than about 4.5 whatever is asked: beyond 4 the stream would
  not have the bit rate the client asked for.
"""

from __future__ import annotations

from collections.abc import Collection

from speakstream.protocol.errors import ErrorCode, ProtocolError, SpeakstreamError

_MPEG1_KBPS = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MPEG2_KBPS = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
_MPEG25_KBPS = _MPEG2_KBPS[: _MPEG2_KBPS.index(64) + 1]
_MPEG1_RATES_HZ = frozenset({32000, 44100, 48000})
_MPEG2_RATES_HZ = frozenset({16000, 22050, 24000})

DEFAULT_BIT_RATES_KBPS: dict[str, int] = {"mp3": 64, "opus": 32, "opus_packets": 32, "aac": 64}


class UnsupportedBitRateError(SpeakstreamError, ValueError):
    """A bit rate an encoding cannot be made at (or an encoding that takes none)."""


def _mp3_kbps(sample_rate_hz: int) -> tuple[int, ...]:
    if sample_rate_hz in _MPEG1_RATES_HZ:
        return _MPEG1_KBPS
    if sample_rate_hz in _MPEG2_RATES_HZ:
        return _MPEG2_KBPS
    return _MPEG25_KBPS


def bit_rates_kbps(encoding: str, sample_rate_hz: int) -> Collection[int] | None:
    """The bit rates (kb/s) ``encoding`` takes at ``sample_rate_hz``; None: it takes none."""
    if encoding == "mp3":
        return _mp3_kbps(sample_rate_hz)
    if encoding in ("opus", "opus_packets"):
        return range(6, 257)
    if encoding == "aac":
        return range(8, 4 * sample_rate_hz // 1000 + 1)
    return None


def _describe(rates: Collection[int]) -> str:
    if isinstance(rates, range):
        return f"{rates.start}-{rates.stop - 1} kb/s"
    return ", ".join(str(r) for r in rates) + " kb/s"


def check_bit_rate_kbps(encoding: str, sample_rate_hz: int, bit_rate_kbps: int) -> None:
    """Raise ``UnsupportedBitRateError`` unless ``encoding`` at ``sample_rate_hz`` can be
    made at ``bit_rate_kbps``."""
    rates = bit_rates_kbps(encoding, sample_rate_hz)
    if rates is None:
        raise UnsupportedBitRateError(
            f"{encoding} has no bit rate to choose; bit_rate_kbps is for mp3, opus, "
            "opus_packets and aac"
        )
    if bit_rate_kbps not in rates:
        raise UnsupportedBitRateError(
            f"{encoding} at {sample_rate_hz} Hz cannot be made at {bit_rate_kbps} kb/s; "
            f"it takes {_describe(rates)}"
        )


def session_check_bit_rate(encoding: str, sample_rate_hz: int, bit_rate_kbps: int) -> None:
    """``check_bit_rate_kbps`` for a context: raises ``ProtocolError`` (unsupported_bit_rate)."""
    try:
        check_bit_rate_kbps(encoding, sample_rate_hz, bit_rate_kbps)
    except UnsupportedBitRateError as exc:
        raise ProtocolError(ErrorCode.UNSUPPORTED_BIT_RATE, str(exc)) from None
