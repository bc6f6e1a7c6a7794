"""Deepgram's REST text-to-speech through the official ``deepgram-sdk`` against the real
server (Piper)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from deepgram import AsyncDeepgramClient
from deepgram.core.api_error import ApiError
from deepgram.environment import DeepgramClientEnvironment

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
MODEL = "aura-2-thalia-en"


def client(srv: RunningServer) -> AsyncDeepgramClient:
    url = http_url(srv)
    ws = url.replace("http://", "ws://")
    env = DeepgramClientEnvironment(base=url, production=ws, agent=ws, agent_rest=url)
    return AsyncDeepgramClient(api_key="unused", environment=env)


async def generate(srv: RunningServer, text: str = SHORT_TEXT, **params: Any) -> bytes:
    params.setdefault("model", MODEL)
    parts = [chunk async for chunk in client(srv).speak.v1.audio.generate(text=text, **params)]
    return b"".join(parts)


async def test_every_encoding_decodes_to_the_native_duration(piper_server: RunningServer) -> None:
    native_s = await native_seconds(piper_server, SHORT_TEXT)
    cases: list[tuple[dict[str, Any], tuple[str, int] | None]] = [
        ({}, None),  # mp3, Deepgram's default
        ({"encoding": "linear16"}, None),  # a WAV file at 24 kHz
        ({"encoding": "linear16", "container": "none", "sample_rate": 16000}, ("s16le", 16000)),
        ({"encoding": "mulaw"}, None),  # μ-law in WAV at 8 kHz
        ({"encoding": "alaw", "container": "none"}, ("alaw", 8000)),
        ({"encoding": "opus"}, None),
        ({"encoding": "flac"}, None),
        ({"encoding": "aac"}, None),
    ]
    for params, raw in cases:
        audio = await generate(piper_server, **params)
        seconds = raw_seconds(audio, *raw) if raw else decode_seconds(audio)
        assert_duration(seconds, native_s)
    await counters_back_to_zero(piper_server.runtime)


async def test_bit_rate_sets_the_compressed_encodings_and_is_ignored_by_the_others(
    piper_server: RunningServer,
) -> None:
    native_s = await native_seconds(piper_server, SHORT_TEXT)
    for encoding, bit_rate_bps, tolerance in (("mp3", 32000, 0.01), ("aac", 40000, 0.15)):
        audio = await generate(piper_server, encoding=encoding, bit_rate=bit_rate_bps)
        assert_duration(decode_seconds(audio), native_s)
        assert payload_bits_per_s(audio) == pytest.approx(bit_rate_bps, rel=tolerance)
    wav = await generate(piper_server, encoding="linear16", bit_rate=48000)
    assert_duration(decode_seconds(wav), native_s)
    await counters_back_to_zero(piper_server.runtime)


async def test_linear16_defaults_to_a_24_khz_wav_with_deepgram_headers(
    piper_server: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=http_url(piper_server)) as raw:
        response = await raw.post(
            "/v1/speak",
            params={"model": MODEL, "encoding": "linear16"},
            json={"text": "Hello."},
            headers={"Authorization": "Token unused"},
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["dg-model-name"] == MODEL
    assert response.headers["dg-char-count"] == "6"
    assert response.content[:4] == b"RIFF"
    assert int.from_bytes(response.content[24:28], "little") == 24000


async def test_first_bytes_leave_before_the_text_is_spoken_and_leaving_stops_the_work(
    piper_engine: Engine,
) -> None:
    async with running_server(piper_engine, write_timeout_s=600) as srv:
        async for chunk in client(srv).speak.v1.audio.generate(
            text=LONG_TEXT, model=MODEL, encoding="linear16", container="none"
        ):
            assert chunk
            assert srv.runtime.active_streams == 1  # still speaking: no done yet
            break
        await counters_back_to_zero(srv.runtime)


async def test_errors_have_deepgram_shape_and_status(piper_engine: Engine) -> None:
    async with running_server(piper_engine, accept_unknown_voices=False, max_text_chars=200) as srv:
        cases: list[tuple[dict[str, Any], int]] = [
            ({"model": MODEL}, 400),  # an unknown voice
            ({"model": "en_US-joe-medium", "encoding": "speex"}, 400),
            ({"model": "en_US-joe-medium", "encoding": "mulaw", "sample_rate": 44100}, 400),
            ({"model": "en_US-joe-medium", "encoding": "mp3", "container": "wav"}, 400),
            # mp3 at 22050 Hz goes to 160 kb/s; opus from 6 kb/s; whole kb/s only
            ({"model": "en_US-joe-medium", "encoding": "mp3", "bit_rate": 320000}, 400),
            ({"model": "en_US-joe-medium", "encoding": "opus", "bit_rate": 4000}, 400),
            ({"model": "en_US-joe-medium", "encoding": "mp3", "bit_rate": 32500}, 400),
            ({"model": "en_US-joe-medium", "text": "x" * 201}, 413),
        ]
        for params, status in cases:
            with pytest.raises(ApiError) as caught:
                await generate(srv, **params)
            assert caught.value.status_code == status
            body = caught.value.body
            assert isinstance(body, dict)
            assert {"err_code", "err_msg", "request_id"} <= set(body)
        async with httpx.AsyncClient(base_url=http_url(srv)) as raw:
            query = {"model": "en_US-joe-medium"}
            missing = await raw.post("/v1/speak", params=query, json={})
            unknown = await raw.post("/v1/speak", params=query, json={"text": "Hi.", "x": 1})
            broken = await raw.post("/v1/speak", params=query, content=b"text=hi")
        for response in (missing, unknown, broken):
            assert response.status_code == 400
            assert response.json()["err_code"] == "INVALID_JSON"
        assert srv.runtime.connections == 0


async def test_the_readme_snippet_runs(piper_server: RunningServer, tmp_path: Path) -> None:
    code = readme_snippet("deepgram")
    await asyncio.to_thread(run_snippet, code, http_url(piper_server), tmp_path)
    assert decode_seconds((tmp_path / "deepgram.wav").read_bytes()) > 0.5
