"""Formats, resampling and G.711 on synthetic signals, decoded back with PyAV.

No engine here: a tone, a noise burst and a chirp between stretches of silence show
duration, content and continuity more sharply than speech does, and each region has a
known level and pitch to check after a round trip. Real Piper speech through every format
and the server is ``tests/test_formats_e2e.py``.
"""

from __future__ import annotations

import io
import warnings

import av
import numpy as np
import numpy.typing as npt
import pytest
import soxr

from speakstream.audio import g711
from speakstream.audio.encoders import (
    FORMATS,
    UnsupportedFormatError,
    allowed_rates_hz,
    resolve_rate_hz,
)
from speakstream.audio.pcm import FloatArray, PcmChunk, float_to_int16
from speakstream.audio.pipeline import StreamPipeline
from speakstream.audio.resample import StreamResampler

SOURCE_HZ = 22050  # the bundled Piper voice's rate: the resampling paths of production
RAW_FORMATS = {"pcm_s16le": "s16le", "pcm_f32le": "f32le", "mulaw": "mulaw", "alaw": "alaw"}

# (kind, start ms, end ms) of the test signal; tone 440 Hz, chirp 200 -> 3000 Hz
REGIONS = (
    ("silence", 0, 100),
    ("tone", 100, 600),
    ("silence", 600, 900),
    ("noise", 900, 1200),
    ("silence", 1200, 1500),
    ("chirp", 1500, 2000),
    ("silence", 2000, 2100),
)
SIGNAL_MS = 2100
TONE_HZ = 440.0


def _samples(ms: float, rate_hz: int = SOURCE_HZ) -> int:
    return round(ms * rate_hz / 1000)


def make_signal() -> FloatArray:
    """Silence, a 440 Hz tone, silence, a noise burst, silence, a chirp, silence."""
    rng = np.random.default_rng(7)
    parts: list[npt.NDArray[np.float64]] = []
    for kind, start_ms, end_ms in REGIONS:
        n = _samples(end_ms - start_ms)
        t = np.arange(n) / SOURCE_HZ
        if kind == "silence":
            parts.append(np.zeros(n))
        elif kind == "tone":
            parts.append(0.5 * np.sin(2 * np.pi * TONE_HZ * t))
        elif kind == "noise":
            parts.append(rng.uniform(-0.3, 0.3, n))
        else:  # a linear chirp, well inside every output rate's band
            duration_s = n / SOURCE_HZ
            parts.append(0.5 * np.sin(2 * np.pi * (200 * t + 2800 * t * t / (2 * duration_s))))
    return np.concatenate(parts).astype(np.float32)


SIGNAL = make_signal()


def engine_chunks(signal: FloatArray = SIGNAL) -> list[PcmChunk]:
    """The signal cut at uneven places, as an engine's chunks would be."""
    cuts = [1, 2, 997, 5000, 5001, 12_345, 30_000]
    return [PcmChunk(part, SOURCE_HZ) for part in np.split(signal, cuts)]


def encode_all(encoding: str, rate_hz: int, chunks: list[PcmChunk]) -> list[bytes]:
    pipeline = StreamPipeline(encoding, rate_hz, SOURCE_HZ)
    payloads: list[bytes] = []
    for chunk in chunks:
        # split the chunks further: the stream must not care where chunks end
        for part in np.array_split(chunk.samples, 3):
            payloads += pipeline.process(PcmChunk(part.astype(np.float32), SOURCE_HZ))
    return payloads + pipeline.finish()


def decode(encoding: str, rate_hz: int, data: bytes) -> tuple[FloatArray, int]:
    """Decoded mono float samples (16-bit ones scaled by 1/32767) and their rate."""
    if encoding in RAW_FORMATS:
        container = av.open(
            io.BytesIO(data),
            format=RAW_FORMATS[encoding],
            options={"sample_rate": str(rate_hz), "ch_layout": "mono"},
        )
    else:
        container = av.open(io.BytesIO(data))
    with container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        decoded_rate_hz = int(stream.rate)
    samples = np.concatenate(frames)
    if samples.dtype == np.int16:
        return (samples / 32767.0).astype(np.float32), decoded_rate_hz
    return samples.astype(np.float32), decoded_rate_hz


def onset_ms(samples: FloatArray, rate_hz: int) -> float:
    return 1000.0 * int(np.flatnonzero(np.abs(samples) > 0.05)[0]) / rate_hz


def rms(samples: FloatArray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def peak_hz(samples: FloatArray, rate_hz: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum)) * rate_hz / samples.size


# Padding a stream may add after the end: MP3 cannot say where a streamed file's
# encoder delay and last frame's padding end (no seekable header to hold it).
PADDING_MS = {"mp3": 130.0, "aac": 90.0}  # AAC: 1024 priming samples, last frame padded
# The delay a codec may put before the audio (MP3's encoder and decoder delay).
DELAY_MS = {"mp3": 80.0, "aac": 50.0}

CASES = [
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
    ("aac", 24000),
    ("flac", 22050),
]


@pytest.mark.parametrize(("encoding", "rate_hz"), CASES)
def test_each_format_decodes_to_the_signal_duration(encoding: str, rate_hz: int) -> None:
    payloads = encode_all(encoding, rate_hz, engine_chunks())
    assert all(payloads), "no empty payloads"
    samples, decoded_hz = decode(encoding, rate_hz, b"".join(payloads))
    duration_ms = 1000.0 * samples.size / decoded_hz
    assert SIGNAL_MS - 1 <= duration_ms <= SIGNAL_MS + PADDING_MS.get(encoding, 1.0)


@pytest.mark.parametrize(("encoding", "rate_hz"), CASES)
def test_each_format_keeps_the_content(encoding: str, rate_hz: int) -> None:
    """Silence stays silent, the tone keeps its pitch and level, noise and chirp their level."""
    samples, decoded_hz = decode(
        encoding, rate_hz, b"".join(encode_all(encoding, rate_hz, engine_chunks()))
    )
    delay_ms = onset_ms(samples, decoded_hz) - onset_ms(SIGNAL, SOURCE_HZ)
    assert -1.0 <= delay_ms <= DELAY_MS.get(encoding, 1.0)
    # what the encoder was given: the signal at the output rate (noise loses its top band)
    reference = soxr.resample(SIGNAL, SOURCE_HZ, rate_hz, quality="HQ").astype(np.float32)
    guard_ms = 30  # codecs and filters smear each edge a little
    for kind, start_ms, end_ms in REGIONS:
        begin, end = start_ms + guard_ms, end_ms - guard_ms
        got = samples[_samples(begin + delay_ms, decoded_hz) : _samples(end + delay_ms, decoded_hz)]
        want = reference[_samples(begin, rate_hz) : _samples(end, rate_hz)]
        if kind == "silence":
            assert rms(got) < 0.001, f"{kind} at {start_ms} ms"
            continue
        tolerance = 0.25 if kind == "noise" else 0.1  # Opus and MP3 code noise by its energy
        assert rms(got) == pytest.approx(rms(want), rel=tolerance), f"{kind} at {start_ms} ms"
        if kind == "tone":
            assert peak_hz(got, decoded_hz) == pytest.approx(TONE_HZ, abs=5)
        if kind == "chirp":  # still rising: the second half is higher than the first
            first, second = np.array_split(got, 2)
            assert peak_hz(second, decoded_hz) > peak_hz(first, decoded_hz) + 500


@pytest.mark.parametrize("encoding", ["pcm_s16le", "wav", "pcm_f32le"])
def test_pcm_at_the_source_rate_is_exact(encoding: str) -> None:
    samples, _ = decode(
        encoding, SOURCE_HZ, b"".join(encode_all(encoding, SOURCE_HZ, engine_chunks()))
    )
    if encoding == "pcm_f32le":
        assert np.array_equal(samples, SIGNAL)
    else:
        assert np.array_equal(np.rint(samples * 32767.0).astype(np.int16), float_to_int16(SIGNAL))


def test_float_to_int16_clips_scales_and_rounds() -> None:
    x = np.array([-2.0, -1.0, -0.5, -1e-6, 0.0, 0.25, 0.5, 1.0, 3.0], dtype=np.float32)
    pcm = float_to_int16(x)
    assert pcm.dtype == np.int16
    assert pcm.tolist() == [-32767, -32767, -16384, 0, 0, 8192, 16384, 32767, 32767]


def test_pcm16_wav_and_g711_encode_the_same_16_bit_samples() -> None:
    """One conversion to 16 bits: μ-law and A-law of the PCM payload's own samples."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # the stdlib's C reference implementation (Python < 3.13)

    rng = np.random.default_rng(11)
    x = rng.uniform(-1.2, 1.2, 8000).astype(np.float32)  # out of range too: clipped alike

    def payload(encoding: str) -> bytes:
        return b"".join(StreamPipeline(encoding, 8000, 8000).process(PcmChunk(x, 8000)))

    pcm = payload("pcm_s16le")
    assert pcm == float_to_int16(x).astype("<i2").tobytes()
    assert payload("wav")[44:] == pcm
    assert payload("mulaw") == audioop.lin2ulaw(pcm, 2)
    assert payload("alaw") == audioop.lin2alaw(pcm, 2)


def test_opus_packets_are_whole_20ms_packets() -> None:
    payloads = encode_all("opus_packets", 48000, engine_chunks())
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate = 48000
    decoder.layout = "mono"
    samples = []
    for payload in payloads:
        frames = decoder.decode(av.Packet(payload))
        samples += [f.samples for f in frames]
    assert set(samples) == {960}  # every packet decodes alone to exactly 20 ms
    assert len(payloads) * 20 == pytest.approx(SIGNAL_MS, abs=40)


@pytest.mark.parametrize(
    ("encoding", "magic"),
    [("wav", b"RIFF"), ("opus", b"OggS"), ("mp3", b"\xff")],
)
def test_streams_are_decodable_from_their_first_payload(encoding: str, magic: bytes) -> None:
    rate = resolve_rate_hz(encoding, None, SOURCE_HZ)
    payloads = encode_all(encoding, rate, engine_chunks(SIGNAL[: _samples(700)]))
    assert payloads[0].startswith(magic)
    # the first payloads alone already decode, and to the tone that starts the signal
    head = b"".join(payloads[: max(2, len(payloads) // 2)])
    samples, _ = decode(encoding, rate, head)
    assert samples.size > 0 and np.max(np.abs(samples)) > 0.3


@pytest.mark.parametrize(("encoding", "width"), [("pcm_s16le", 2), ("pcm_f32le", 4), ("mulaw", 1)])
def test_pcm_payloads_never_split_a_sample(encoding: str, width: int) -> None:
    chunks = engine_chunks()  # chunks of 1, 1, 995 ... samples: odd sizes at every rate
    for rate in sorted(allowed_rates_hz(encoding, SOURCE_HZ)):
        assert all(len(p) % width == 0 for p in encode_all(encoding, rate, chunks))


def test_wav_header_comes_once() -> None:
    pipeline = StreamPipeline("wav", 16000, SOURCE_HZ)
    tone = PcmChunk(SIGNAL[: _samples(100)], SOURCE_HZ)
    first = pipeline.process(tone)
    second = pipeline.process(tone)
    assert first[0][:4] == b"RIFF" and second[0][:4] != b"RIFF"
    assert b"RIFF" not in b"".join(second + pipeline.finish())


@pytest.mark.parametrize("out_hz", [8000, 16000, 24000, 44100, 48000])
def test_streaming_resampler_matches_one_shot(out_hz: int) -> None:
    """Chunk edges anywhere (even empty or one-sample chunks) leave no trace in the output."""
    rng = np.random.default_rng(out_hz)
    cuts = np.sort(rng.choice(SIGNAL.size, 40, replace=False))
    cuts = np.sort(np.concatenate([cuts, [cuts[5], cuts[5] + 1]]))  # an empty and a 1-sample
    resampler = StreamResampler(SOURCE_HZ, out_hz)
    parts = [resampler.process(PcmChunk(p, SOURCE_HZ)).samples for p in np.split(SIGNAL, cuts)]
    parts.append(resampler.finish().samples)
    streamed = np.concatenate(parts)
    one_shot = soxr.resample(SIGNAL, SOURCE_HZ, out_hz, quality="HQ").astype(np.float32)
    assert streamed.size == one_shot.size
    assert np.max(np.abs(streamed - one_shot)) < 1e-6


def test_resampler_at_the_same_rate_passes_chunks_through() -> None:
    resampler = StreamResampler(SOURCE_HZ, SOURCE_HZ)
    chunk = PcmChunk(SIGNAL[:100], SOURCE_HZ)
    assert not resampler.active
    assert resampler.process(chunk) is chunk
    assert resampler.finish().num_samples == 0
    with pytest.raises(ValueError, match="chunk at 16000 Hz fed to a 22050 Hz resampler"):
        resampler.process(PcmChunk(SIGNAL[:100], 16000))


def test_g711_round_trip_within_the_codec_bound() -> None:
    x = np.linspace(-1.0, 1.0, 40_001, dtype=np.float32)
    for encode, decode_g711 in (
        (g711.mulaw_encode, g711.mulaw_decode),
        (g711.alaw_encode, g711.alaw_decode),
    ):
        y = decode_g711(encode(x))
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
    assert resolve_rate_hz("mulaw", None, SOURCE_HZ) == 8000
    assert resolve_rate_hz("opus", None, SOURCE_HZ) == 48000
    assert resolve_rate_hz("pcm_s16le", None, SOURCE_HZ) == SOURCE_HZ
    assert resolve_rate_hz("pcm_s16le", 11025, 11025) == 11025  # a voice's own rate is fine
    with pytest.raises(UnsupportedFormatError, match="opus cannot be sent at 22050 Hz"):
        resolve_rate_hz("opus", 22050, SOURCE_HZ)
    with pytest.raises(UnsupportedFormatError, match="unknown encoding 'vorbis'"):
        resolve_rate_hz("vorbis", None, SOURCE_HZ)
    with pytest.raises(UnsupportedFormatError, match="unknown encoding 'vorbis'"):
        StreamPipeline("vorbis", 16000, SOURCE_HZ)
    assert {"pcm_s16le", "pcm_f32le", "mulaw", "alaw", "wav", "opus", "opus_packets", "mp3"} <= set(
        FORMATS
    )
