"""ElevenLabs' HTTP streaming through the official ``elevenlabs`` SDK against the real
server (Piper)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError

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
VOICE_ID = "JBFqnCBsd6RMkjVDRZzb"


def client(srv: RunningServer) -> AsyncElevenLabs:
    return AsyncElevenLabs(base_url=http_url(srv), api_key="unused")


async def stream(srv: RunningServer, text: str = SHORT_TEXT, **params: Any) -> bytes:
    parts = [
        chunk
        async for chunk in client(srv).text_to_speech.stream(
            voice_id=params.pop("voice_id", VOICE_ID), text=text, **params
        )
    ]
    return b"".join(parts)


async def test_every_output_format_decodes_to_the_native_duration(
    piper_server: RunningServer,
) -> None:
    native_s = await native_seconds(piper_server, SHORT_TEXT)
    for fmt, raw in [
        ("pcm_16000", ("s16le", 16000)),
        ("pcm_22050", ("s16le", 22050)),
        ("pcm_24000", ("s16le", 24000)),
        ("pcm_32000", ("s16le", 32000)),
        ("pcm_44100", ("s16le", 44100)),
        ("ulaw_8000", ("mulaw", 8000)),
        ("alaw_8000", ("alaw", 8000)),
        ("wav_24000", None),
        ("mp3_44100_128", None),
        ("mp3_22050_32", None),
    ]:
        audio = await stream(piper_server, output_format=fmt, model_id="eleven_flash_v2_5")
        seconds = raw_seconds(audio, *raw) if raw else decode_seconds(audio)
        assert_duration(seconds, native_s)
        if fmt.startswith("mp3_"):  # made at the bit rate its name asks
            assert payload_bits_per_s(audio) == pytest.approx(
                int(fmt.split("_")[2]) * 1000, rel=0.01
            )
    await counters_back_to_zero(piper_server.runtime)


async def test_timestamps_cover_every_character_in_order(piper_server: RunningServer) -> None:
    native_s = await native_seconds(piper_server, SHORT_TEXT)
    chunks = [
        chunk
        async for chunk in client(piper_server).text_to_speech.stream_with_timestamps(
            voice_id=VOICE_ID, text=SHORT_TEXT, output_format="pcm_24000"
        )
    ]
    import base64

    audio = b"".join(base64.b64decode(c.audio_base_64) for c in chunks)
    assert_duration(raw_seconds(audio, "s16le", 24000), native_s)
    aligned = [c.alignment for c in chunks if c.alignment is not None]
    characters = [ch for a in aligned for ch in a.characters]
    assert "".join(characters) == SHORT_TEXT
    starts = [s for a in aligned for s in a.character_start_times_seconds]
    ends = [e for a in aligned for e in a.character_end_times_seconds]
    assert starts == sorted(starts)
    assert all(e >= s for s, e in zip(starts, ends, strict=True))
    assert 0 < ends[-1] <= native_s * 1.1
    assert chunks[0].normalized_alignment == chunks[0].alignment


async def test_first_bytes_leave_before_the_text_is_spoken_and_leaving_stops_the_work(
    piper_engine: Engine,
) -> None:
    async with running_server(piper_engine, write_timeout_s=600) as srv:
        async for chunk in client(srv).text_to_speech.stream(
            voice_id=VOICE_ID, text=LONG_TEXT, output_format="pcm_24000"
        ):
            assert chunk
            assert srv.runtime.active_streams == 1  # still speaking: no done yet
            break
        await counters_back_to_zero(srv.runtime)


async def test_errors_have_elevenlabs_shape_and_status(piper_engine: Engine) -> None:
    async with running_server(piper_engine, accept_unknown_voices=False, max_text_chars=200) as srv:
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"voice_id": VOICE_ID}, 404, "voice_not_found"),
            (
                {"voice_id": "en_US-joe-medium", "output_format": "opus_48000_64"},
                400,
                "invalid_output_format",
            ),
            (
                {"voice_id": "en_US-joe-medium", "output_format": "pcm_11000"},
                400,
                "invalid_output_format",
            ),
            (  # not among ElevenLabs' MP3 formats
                {"voice_id": "en_US-joe-medium", "output_format": "mp3_16000_64"},
                400,
                "invalid_output_format",
            ),
            (
                {"voice_id": "en_US-joe-medium", "text": "x" * 201},
                400,
                "max_character_limit_exceeded",
            ),
        ]
        for params, status, kind in cases:
            with pytest.raises(ApiError) as caught:
                await stream(srv, **params)
            assert caught.value.status_code == status
            assert isinstance(caught.value.body, dict)
            assert caught.value.body["detail"]["status"] == kind
        url = "/v1/text-to-speech/en_US-joe-medium/stream"
        async with httpx.AsyncClient(base_url=http_url(srv)) as raw:
            missing = await raw.post(url, json={"model_id": "eleven_flash_v2_5"})
            unknown = await raw.post(url, json={"text": "Hi.", "tone": "warm"})
            broken = await raw.post(url, content=b"[1,")
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["loc"] == ["body", "text"]
        assert unknown.status_code == 422
        assert unknown.json()["detail"][0]["type"] == "extra_forbidden"
        assert broken.status_code == 422
        assert srv.runtime.connections == 0


async def test_the_readme_snippet_runs(piper_server: RunningServer, tmp_path: Path) -> None:
    code = readme_snippet("elevenlabs")
    await asyncio.to_thread(run_snippet, code, http_url(piper_server), tmp_path)
    assert decode_seconds((tmp_path / "elevenlabs.mp3").read_bytes()) > 0.5
