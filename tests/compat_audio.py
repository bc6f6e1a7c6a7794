"""Decoding what a vendor endpoint sent, with PyAV, to check it is the audio it claims."""

from __future__ import annotations

import io

import av

_RAW = {"pcm_s16le": "s16le", "pcm_f32le": "f32le", "mulaw": "mulaw", "alaw": "alaw"}


def decoded_duration_s(data: bytes, encoding: str, sample_rate_hz: int) -> float:
    """Seconds of audio PyAV decodes from ``data``; checks the decoded rate too."""
    fmt = _RAW.get(encoding)
    options = {"sample_rate": str(sample_rate_hz), "ch_layout": "mono"} if fmt else {}
    samples = 0
    with av.open(io.BytesIO(data), format=fmt, options=options) as container:
        for frame in container.decode(audio=0):
            assert frame.sample_rate == sample_rate_hz
            samples += frame.samples
    return samples / sample_rate_hz


def payload_bits_per_s(data: bytes) -> float:
    """The bit rate of a compressed stream as sent: its codec packets' bytes (without
    container pages) over their duration, measured rather than read from a header."""
    with av.open(io.BytesIO(data)) as container:
        packets = [p for p in container.demux(audio=0) if p.size]
        seconds = sum(float(p.duration * p.time_base) for p in packets)
        return sum(p.size for p in packets) * 8 / seconds
