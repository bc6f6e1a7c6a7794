"""Output formats through the real server with Piper, decoded back with PyAV."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
import pytest

from speakstream.audio import encoders
from speakstream.audio.pcm import PcmChunk
from speakstream.client import ContextResult, connect
from speakstream.engines import Engine
from tests.compat_audio import payload_bits_per_s
from tests.conftest import running_server

pytestmark = pytest.mark.timeout(120)

LONG_TEXT = (
    "This sentence is long enough to measure a duration well. It goes on, with a clause "
    "or two, and then a second sentence follows. A third one ends it."
)


async def speak(url: str, text: str, **start: Any) -> ContextResult:
    async with await connect(url) as conn:
        ctx = await conn.open_context("f", **start)
        await ctx.send(text)
        await ctx.end()
        return await ctx.collect()


def decode_seconds(data: bytes, **open_args: Any) -> float:
    with av.open(io.BytesIO(data), **open_args) as container:
        stream = container.streams.audio[0]
        return sum(f.samples for f in container.decode(stream)) / stream.rate


@pytest.mark.parametrize(
    ("start", "open_args"),
    [
        ({"encoding": "opus", "sample_rate_hz": 24000}, {}),
        ({"encoding": "mp3"}, {}),
        ({"encoding": "wav", "sample_rate_hz": 16000}, {}),
        (
            {"encoding": "mulaw"},
            {"format": "mulaw", "options": {"sample_rate": "8000", "ch_layout": "mono"}},
        ),
        (
            {"encoding": "pcm_s16le", "sample_rate_hz": 48000},
            {"format": "s16le", "options": {"sample_rate": "48000", "ch_layout": "mono"}},
        ),
    ],
)
async def test_formats_through_the_server_decode_to_the_spoken_duration(
    piper_engine: Engine, start: dict[str, Any], open_args: dict[str, Any]
) -> None:
    async with running_server(piper_engine) as srv:
        result = await speak(srv.stream_url, LONG_TEXT, **start)
    assert not result.errors
    done = result.first("done")
    assert done is not None
    audio_s = done.data["metrics"]["audio_ms"] / 1000
    assert audio_s > 4
    assert decode_seconds(result.audio, **open_args) == pytest.approx(audio_s, rel=0.02)
    assert [c.frame for c in result.chunks] == list(range(len(result.chunks)))


@pytest.mark.parametrize(
    ("start", "tolerance"),
    [
        ({"encoding": "mp3", "sample_rate_hz": 44100, "bit_rate_kbps": 128}, 0.01),
        # Opus is variable: a target it undershoots in pauses; the default is 32 kb/s
        ({"encoding": "opus", "bit_rate_kbps": 16}, 0.2),
    ],
)
async def test_compressed_audio_comes_at_the_bit_rate_asked(
    piper_engine: Engine, start: dict[str, Any], tolerance: float
) -> None:
    async with running_server(piper_engine) as srv:
        result = await speak(srv.stream_url, LONG_TEXT, **start)
    assert not result.errors
    done = result.first("done")
    assert done is not None
    assert decode_seconds(result.audio) == pytest.approx(
        done.data["metrics"]["audio_ms"] / 1000, rel=0.02
    )
    expected_bps = start["bit_rate_kbps"] * 1000
    assert payload_bits_per_s(result.audio) == pytest.approx(expected_bps, rel=tolerance)


async def test_a_bit_rate_the_codec_cannot_make_is_refused(piper_engine: Engine) -> None:
    async with running_server(piper_engine) as srv:
        result = await speak(srv.stream_url, "Hello.", encoding="mp3", bit_rate_kbps=320)
    # mp3 at the voice's 22050 Hz is MPEG-2: at most 160 kb/s
    assert [e.data["code"] for e in result.errors] == ["unsupported_bit_rate"]
    error = result.errors[0].data
    assert error["context"] == "f" and "8, 16, 24" in error["message"]


async def test_ready_lists_every_encoding_with_its_rates(piper_engine: Engine) -> None:
    async with running_server(piper_engine) as srv, await connect(srv.stream_url) as conn:
        formats = conn.ready["capabilities"]["encodings"]
    assert formats["opus"]["sample_rates_hz"] == [8000, 12000, 16000, 24000, 48000]
    assert formats["mulaw"]["default_sample_rate_hz"] == 8000
    assert 22050 in formats["pcm_s16le"]["sample_rates_hz"]


async def test_volume_scales_the_audio(piper_engine: Engine) -> None:
    async with running_server(piper_engine) as srv:
        loud = await speak(srv.stream_url, "Volume check, one two three.", volume=1.0)
        quiet = await speak(srv.stream_url, "Volume check, one two three.", volume=0.5)

    def loudness(result: ContextResult) -> float:
        # speech only: the RMS of the whole also counted the pauses between segments,
        # whose length varies from run to run with where the text was cut (0.40 seen)
        samples = np.abs(np.frombuffer(result.audio, dtype="<i2").astype(np.float64))
        return float(np.percentile(samples, 95))

    # Piper's noise varies between the two runs, and Piper normalizes each run's peak, so
    # two runs cut at different places differ in loudness too (0.41 seen in a full run);
    # without the volume the ratio would be 1
    assert loudness(quiet) / loudness(loud) == pytest.approx(0.5, rel=0.3)


class _BrokenEncoder:
    encoding = "broken"

    def __init__(self, sample_rate_hz: int) -> None:
        self.sample_rate_hz = sample_rate_hz

    def encode(self, chunk: PcmChunk) -> list[bytes]:
        raise RuntimeError("codec exploded")

    def finish(self) -> list[bytes]:
        return []


@pytest.fixture
def broken_format(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    spec = encoders.FormatSpec("broken", _BrokenEncoder, None, None, "audio/x-broken", True)
    monkeypatch.setitem(encoders.FORMATS, "broken", spec)
    monkeypatch.setattr(encoders, "ENCODINGS", (*encoders.ENCODINGS, "broken"))
    from speakstream.server import runtime

    monkeypatch.setattr(runtime, "ENCODINGS", encoders.ENCODINGS)
    yield


async def test_encoder_failure_is_reported_and_the_connection_goes_on(
    piper_engine: Engine, broken_format: None
) -> None:
    async with running_server(piper_engine) as srv, await connect(srv.stream_url) as conn:
        bad = await conn.open_context("bad", encoding="broken")
        await bad.send("This will not encode.")
        await bad.end()
        failed = await bad.collect()  # ends: the context's events still come, with done
        assert not failed.audio
        [error] = failed.errors
        assert error.data["code"] == "encoding_failed" and error.data["context"] == "bad"
        assert failed.first("done") is not None
        good = conn.context("good")
        await good.send("But this context still speaks.")
        await good.end()
        result = await good.collect()
        assert result.audio and not result.errors
