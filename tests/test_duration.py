"""The client's audio clock against real encoders, checked by decoding with FFmpeg."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from speakstream.audio.encoders import create_encoder
from speakstream.audio.pcm import PcmChunk
from speakstream.client.duration import AudioClock


def encoded(encoding: str, rate_hz: int, seconds: float) -> list[bytes]:
    encoder = create_encoder(encoding, rate_hz)
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    samples = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    payloads: list[bytes] = []
    for piece in np.array_split(samples, 17):  # chunks of uneven sizes, as a server sends
        payloads.extend(encoder.encode(PcmChunk(piece, rate_hz)))
    payloads.extend(encoder.finish())
    return payloads


def decoded_ms(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        return 1000.0 * sum(f.samples for f in container.decode(stream)) / stream.rate


@pytest.mark.parametrize(
    ("encoding", "rate_hz"),
    [("opus", 48000), ("opus", 24000), ("mp3", 22050), ("mp3", 44100), ("mp3", 16000)],
)
def test_compressed_streams_count_what_a_decoder_gets(encoding: str, rate_hz: int) -> None:
    payloads = encoded(encoding, rate_hz, 2.5)
    clock = AudioClock(encoding, rate_hz)
    data = b"".join(payloads)
    for start in range(0, len(data), 1000):  # split anywhere, not on page or frame bounds
        clock.add(data[start : start + 1000])
    assert clock.audio_ms == pytest.approx(decoded_ms(data), abs=30)
    assert clock.audio_ms == pytest.approx(2500, abs=120)  # + codec delay, padding


def test_a_clock_advances_while_the_stream_arrives() -> None:
    payloads = encoded("mp3", 22050, 2.0)
    clock = AudioClock("mp3", 22050)
    seen = []
    for payload in payloads:
        clock.add(payload)
        seen.append(clock.audio_ms)
    assert seen == sorted(seen) and 0 < seen[len(seen) // 2] < seen[-1]


@pytest.mark.parametrize(
    ("encoding", "rate_hz"), [("pcm_s16le", 22050), ("mulaw", 8000), ("wav", 16000)]
)
def test_pcm_like_streams_count_samples(encoding: str, rate_hz: int) -> None:
    clock = AudioClock(encoding, rate_hz)
    for payload in encoded(encoding, rate_hz, 1.5):
        clock.add(payload)
    assert clock.audio_ms == pytest.approx(1500, abs=1)


def test_raw_opus_packets_read_their_toc() -> None:
    clock = AudioClock("opus_packets", 48000)
    for payload in encoded("opus_packets", 48000, 1.0):
        clock.add(payload)
    assert clock.audio_ms == pytest.approx(1000, abs=40)
