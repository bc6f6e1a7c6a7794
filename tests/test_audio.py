"""Formats, resampling and G.711, decoded back with PyAV (real Piper speech as input)."""

from __future__ import annotations

import io
import warnings

import av
import numpy as np
import pytest
import soxr

from speakstream.audio import g711
from speakstream.audio.encoders import (
    FORMATS,
    UnsupportedFormatError,
    allowed_rates_hz,
    resolve_rate_hz,
)
from speakstream.audio.pcm import PcmChunk
from speakstream.audio.pipeline import StreamPipeline
from speakstream.audio.resample import StreamResampler
from speakstream.engines import Engine, SynthesisOptions

VOICE = "en_US-joe-medium"
VOICE_HZ = 22050


@pytest.fixture(scope="module")
def speech(piper_engine: Engine) -> list[PcmChunk]:
    """About 8 s of real speech in several chunks, as the engine makes them."""
    texts = [
        "Streaming speech starts before the text ends.",
        "Each piece is synthesized on its own,",
        "and the joins must not click or pop.",
        "Telephony wants eight kilohertz, browsers want Opus, files want MP3.",
    ]
    return [c for t in texts for c in piper_engine.synthesize(t, VOICE, SynthesisOptions())]


def encode_all(encoding: str, rate_hz: int, chunks: list[PcmChunk]) -> list[bytes]:
    pipeline = StreamPipeline(encoding, rate_hz, VOICE_HZ)
    payloads: list[bytes] = []
    for chunk in chunks:
        # split engine chunks further: the stream must not care where chunks end
        for part in np.array_split(chunk.samples, 3):
            payloads += pipeline.process(PcmChunk(part.astype(np.float32), VOICE_HZ))
    return payloads + pipeline.finish()


def decoded_seconds(encoding: str, rate_hz: int, data: bytes) -> float:
    raw_formats = {"pcm_s16le": "s16le", "pcm_f32le": "f32le", "mulaw": "mulaw", "alaw": "alaw"}
    if encoding in raw_formats:
        container = av.open(
            io.BytesIO(data),
            format=raw_formats[encoding],
            options={"sample_rate": str(rate_hz), "ch_layout": "mono"},
        )
    else:
        container = av.open(io.BytesIO(data))
    with container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate


def speech_seconds(chunks: list[PcmChunk]) -> float:
    return sum(c.num_samples for c in chunks) / VOICE_HZ


@pytest.mark.parametrize(
    ("encoding", "rate_hz"),
    [
        ("pcm_s16le", 22050),
        ("pcm_s16le", 16000),
        ("pcm_s16le", 48000),
        ("pcm_f32le", 24000),
        ("mulaw", 8000),
        ("alaw", 8000),
        ("wav", 22050),
        ("wav", 44100),
        ("opus", 48000),
        ("opus", 24000),
        ("opus", 16000),
        ("mp3", 22050),
        ("mp3", 16000),
    ],
)
def test_each_format_decodes_to_the_same_duration(
    speech: list[PcmChunk], encoding: str, rate_hz: int
) -> None:
    payloads = encode_all(encoding, rate_hz, speech)
    assert all(payloads), "no empty payloads"
    seconds = decoded_seconds(encoding, rate_hz, b"".join(payloads))
    assert seconds == pytest.approx(speech_seconds(speech), rel=0.02)


def test_opus_packets_are_whole_20ms_packets(speech: list[PcmChunk]) -> None:
    payloads = encode_all("opus_packets", 48000, speech)
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = 48000
    decoder.layout = "mono"
    samples = []
    for payload in payloads:
        frames = decoder.decode(av.Packet(payload))
        samples += [f.samples for f in frames]
    assert set(samples) == {960}  # every packet decodes alone to exactly 20 ms
    assert len(payloads) * 0.02 == pytest.approx(speech_seconds(speech), abs=0.04)


@pytest.mark.parametrize(
    ("encoding", "magic"),
    [("wav", b"RIFF"), ("opus", b"OggS"), ("mp3", b"\xff")],
)
def test_streams_are_decodable_from_their_first_payload(
    speech: list[PcmChunk], encoding: str, magic: bytes
) -> None:
    rate = resolve_rate_hz(encoding, None, VOICE_HZ)
    payloads = encode_all(encoding, rate, speech[:1])
    assert payloads[0].startswith(magic)
    # the first payloads alone already decode
    head = b"".join(payloads[: max(2, len(payloads) // 2)])
    assert decoded_seconds(encoding, rate, head) > 0


@pytest.mark.parametrize(("encoding", "width"), [("pcm_s16le", 2), ("pcm_f32le", 4), ("mulaw", 1)])
def test_pcm_payloads_never_split_a_sample(
    speech: list[PcmChunk], encoding: str, width: int
) -> None:
    for rate in sorted(allowed_rates_hz(encoding, VOICE_HZ)):
        assert all(len(p) % width == 0 for p in encode_all(encoding, rate, speech[:2]))


def test_wav_header_comes_once() -> None:
    pipeline = StreamPipeline("wav", 16000, VOICE_HZ)
    tone = PcmChunk(np.zeros(2205, dtype=np.float32), VOICE_HZ)
    first = pipeline.process(tone)
    second = pipeline.process(tone)
    assert first[0][:4] == b"RIFF" and second[0][:4] != b"RIFF"
    assert b"RIFF" not in b"".join(second + pipeline.finish())


def test_streaming_resampler_matches_one_shot(speech: list[PcmChunk]) -> None:
    whole = np.concatenate([c.samples for c in speech])
    for out_hz in (8000, 16000, 24000, 44100, 48000):
        resampler = StreamResampler(VOICE_HZ, out_hz)
        parts = [
            resampler.process(PcmChunk(p.astype(np.float32), VOICE_HZ)).samples
            for p in np.array_split(whole, 37)
        ]
        parts.append(resampler.finish().samples)
        streamed = np.concatenate(parts)
        one_shot = soxr.resample(whole, VOICE_HZ, out_hz, quality="HQ").astype(np.float32)
        assert abs(streamed.size - one_shot.size) <= 2
        n = min(streamed.size, one_shot.size)
        assert np.max(np.abs(streamed[:n] - one_shot[:n])) < 1e-3


def test_g711_round_trip_within_the_codec_bound() -> None:
    x = np.linspace(-1.0, 1.0, 40_001, dtype=np.float32)
    for encode, decode in (
        (g711.mulaw_encode, g711.mulaw_decode),
        (g711.alaw_encode, g711.alaw_decode),
    ):
        y = decode(encode(x))
        loud = np.abs(x) > 0.01
        # 8-bit logarithmic codecs, 4-bit mantissa: relative error under 1/16 above the
        # linear segments, and at most half the largest step (1024 / 32768) plus the
        # clipping of full scale.
        assert np.max(np.abs(y - x)[loud] / np.abs(x[loud])) < 1 / 16
        assert np.max(np.abs(y - x)) < 0.02
        assert np.all(np.sign(y[np.abs(x) > 0.001]) == np.sign(x[np.abs(x) > 0.001]))


def test_g711_is_bit_exact_with_the_reference() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # the stdlib's C reference implementation (Python < 3.13)

    x = np.linspace(-1.0, 1.0, 65_536, dtype=np.float32)
    pcm = np.rint(x * 32767).astype("<i2").tobytes()
    assert g711.mulaw_encode(x) == audioop.lin2ulaw(pcm, 2)
    assert g711.alaw_encode(x) == audioop.lin2alaw(pcm, 2)
    codes = bytes(range(256))
    assert np.array_equal(
        np.rint(g711.mulaw_decode(codes) * 32767).astype("<i2").tobytes(),
        audioop.ulaw2lin(codes, 2),
    )
    assert np.array_equal(
        np.rint(g711.alaw_decode(codes) * 32767).astype("<i2").tobytes(), audioop.alaw2lin(codes, 2)
    )


def test_rates_and_formats_are_checked() -> None:
    assert resolve_rate_hz("mulaw", None, VOICE_HZ) == 8000
    assert resolve_rate_hz("opus", None, VOICE_HZ) == 48000
    assert resolve_rate_hz("pcm_s16le", None, VOICE_HZ) == VOICE_HZ
    assert resolve_rate_hz("pcm_s16le", 11025, 11025) == 11025  # a voice's own rate is fine
    with pytest.raises(UnsupportedFormatError, match="opus cannot be sent at 22050 Hz"):
        resolve_rate_hz("opus", 22050, VOICE_HZ)
    with pytest.raises(UnsupportedFormatError, match="unknown encoding 'flac'"):
        resolve_rate_hz("flac", None, VOICE_HZ)
    assert {"pcm_s16le", "pcm_f32le", "mulaw", "alaw", "wav", "opus", "opus_packets", "mp3"} <= set(
        FORMATS
    )
