"""Cartesia's bytes endpoint through the official ``cartesia`` SDK against the real server
(Piper)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import cartesia
import httpx
import pytest

from speakstream.engines import Engine
from tests.compat_audio import payload_bits_per_s
from tests.compat_support import (
    LONG_TEXT,
    SHORT_TEXT,
    assert_duration,
    counters_back_to_zero,
    decode_seconds,
    http_url,
    native_seconds,
    raw_seconds,
    readme_snippet,
    run_snippet,
)
from tests.conftest import RunningServer, running_server

pytestmark = pytest.mark.timeout(180)
VOICE = {"mode": "id", "id": "a0e99841-438c-4a64-b679-ae501e7d6091"}


def client(srv: RunningServer) -> cartesia.AsyncCartesia:
    return cartesia.AsyncCartesia(base_url=http_url(srv), api_key="unused", max_retries=0)


async def generate(srv: RunningServer, output_format: dict[str, Any], **params: Any) -> bytes:
    params = {"model_id": "sonic-2", "transcript": SHORT_TEXT, "voice": VOICE, **params}
    async with client(srv).tts.with_streaming_response.generate(
        output_format=output_format, **params
    ) as response:
        return await response.read()


async def test_every_output_format_decodes_to_the_native_duration(
    piper_server: RunningServer,
) -> None:
    native_s = await native_seconds(piper_server, SHORT_TEXT)
    raw_names = {
        "pcm_s16le": "s16le",
        "pcm_f32le": "f32le",
        "pcm_mulaw": "mulaw",
        "pcm_alaw": "alaw",
    }
    for encoding, rate_hz in [
        ("pcm_s16le", 24000),
        ("pcm_f32le", 44100),
        ("pcm_mulaw", 8000),
        ("pcm_alaw", 8000),
    ]:
        fmt = {"encoding": encoding, "sample_rate": rate_hz}
        raw = await generate(piper_server, {"container": "raw", **fmt})
        assert_duration(raw_seconds(raw, raw_names[encoding], rate_hz), native_s)
        wav = await generate(piper_server, {"container": "wav", **fmt})
        assert wav[:4] == b"RIFF"
        assert_duration(decode_seconds(wav), native_s)
    for bit_rate_bps in (128000, 48000):
        mp3 = await generate(
            piper_server, {"container": "mp3", "sample_rate": 44100, "bit_rate": bit_rate_bps}
        )
        assert_duration(decode_seconds(mp3), native_s)
        assert payload_bits_per_s(mp3) == pytest.approx(bit_rate_bps, rel=0.01)
    await counters_back_to_zero(piper_server.runtime)


async def test_first_bytes_leave_before_the_text_is_spoken_and_leaving_stops_the_work(
    piper_engine: Engine,
) -> None:
    fmt = {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 24000}
    async with running_server(piper_engine, write_timeout_s=600) as srv:
        async with client(srv).tts.with_streaming_response.generate(
            model_id="sonic-2", transcript=LONG_TEXT, voice=VOICE, output_format=fmt
        ) as response:
            async for chunk in response.iter_bytes():
                assert chunk
                break
            assert srv.runtime.active_streams == 1  # still speaking: no done yet
        await counters_back_to_zero(srv.runtime)


async def test_errors_have_cartesia_shape_and_status(piper_engine: Engine) -> None:
    fmt = {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 24000}
    ours = {"mode": "id", "id": "en_US-joe-medium"}
    async with running_server(piper_engine, accept_unknown_voices=False, max_text_chars=200) as srv:
        cases: list[tuple[dict[str, Any], type[cartesia.APIStatusError]]] = [
            ({}, cartesia.NotFoundError),  # an unknown voice
            (
                {"voice": ours, "output_format": {**fmt, "sample_rate": 11000}},
                cartesia.BadRequestError,
            ),
            (
                {"voice": ours, "output_format": {**fmt, "encoding": "pcm_s8"}},
                cartesia.BadRequestError,
            ),
            (
                {"voice": ours, "output_format": {**fmt, "container": "ogg"}},
                cartesia.BadRequestError,
            ),
            (  # not a step of MPEG-1 Layer III
                {
                    "voice": ours,
                    "output_format": {"container": "mp3", "sample_rate": 44100, "bit_rate": 100000},
                },
                cartesia.BadRequestError,
            ),
            ({"voice": ours, "transcript": "x" * 201}, cartesia.BadRequestError),
        ]
        for params, kind in cases:
            params = {"output_format": fmt, **params}
            with pytest.raises(kind) as caught:
                await generate(srv, **params)
            body = caught.value.body
            assert isinstance(body, dict)
            assert {"error_code", "title", "message", "request_id"} <= set(body)
        async with httpx.AsyncClient(base_url=http_url(srv)) as raw:
            base = {"model_id": "sonic-2", "voice": ours, "output_format": fmt}
            missing = await raw.post("/tts/bytes", json=base)
            unknown = await raw.post("/tts/bytes", json={**base, "transcript": "Hi.", "pitch": 1})
            broken = await raw.post("/tts/bytes", content=b"{")
        for response in (missing, unknown, broken):
            assert response.status_code == 400
            assert response.json()["error_code"] == "invalid_request"
        assert "transcript" in missing.json()["message"]
        assert srv.runtime.connections == 0


async def test_the_readme_snippet_runs(piper_server: RunningServer, tmp_path: Path) -> None:
    code = readme_snippet("cartesia")
    await asyncio.to_thread(run_snippet, code, http_url(piper_server), tmp_path)
    assert decode_seconds((tmp_path / "cartesia.wav").read_bytes()) > 0.5
