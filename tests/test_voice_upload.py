"""``POST /v1/voices`` on a real server with the Chatterbox engine (random test weights).

Skipped without the ``chatterbox`` extra. Limits (size, decodability, duration, silence),
where and how an upload is stored (server-chosen id, our own WAV, never the client's
bytes), that the route is absent when uploads are off, that an uploaded voice speaks
on the native protocol, and that it is listed wherever voices are listed (the native
``ready``, OpenAI's ``GET /v1/audio/voices``, Wyoming's ``info``).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest

import speakstream
from speakstream.config import Settings
from speakstream.engines import Engine
from tests.chatterbox_support import needs_chatterbox
from tests.conftest import RunningServer, running_server

pytestmark = [pytest.mark.chatterbox, needs_chatterbox, pytest.mark.timeout(600)]


def wav_bytes(seconds: float, rate_hz: int = 16_000, channels: int = 1, loud: bool = True) -> bytes:
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) if loud else np.zeros_like(t)
    pcm = (np.repeat(tone[:, None], channels, axis=1) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def settings_with(upload_dir: Path | None, **changes: object) -> Settings:
    return Settings(log_level="warning").replace(
        chatterbox_upload_dir=str(upload_dir) if upload_dir else "", **changes
    )


async def upload(srv: RunningServer, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(f"http://127.0.0.1:{srv.port}/v1/voices", content=body)


async def test_an_upload_is_stored_under_a_server_chosen_id(
    chatterbox_engine: Engine, tmp_path: Path
) -> None:
    body = wav_bytes(3.0, rate_hz=44_100, channels=2)
    async with running_server(chatterbox_engine, settings_with(tmp_path)) as srv:
        answer = await upload(srv, body)
    assert answer.status_code == 201, answer.text
    reply = answer.json()
    assert re.fullmatch(r"[0-9a-f]{16}", reply["id"])
    assert reply["voice"] == f"upload:{reply['id']}"
    assert reply["sample_rate_hz"] == 44_100 and abs(reply["duration_ms"] - 3000) <= 30
    [stored] = list(tmp_path.iterdir())
    assert stored.name == f"{reply['id']}.wav"
    with wave.open(str(stored)) as kept:  # our own re-encoding: mono 16-bit
        assert (kept.getnchannels(), kept.getsampwidth()) == (1, 2)
    assert stored.read_bytes() != body
    assert srv.runtime.session_config.voices[reply["voice"]] == 24_000


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"", 400, "must be a recording"),
        (b"this is not audio at all" * 100, 400, "not a recording"),
        (wav_bytes(0.5), 400, "under 1 s"),
        (wav_bytes(5.0), 400, "over 4 s"),
        (wav_bytes(2.0, loud=False), 400, "silent"),
        (wav_bytes(3.9, rate_hz=48_000, channels=2), 413, "over 600000 bytes"),
    ],
    ids=["empty", "not-audio", "too-short", "too-long", "silent", "too-big"],
)
async def test_uploads_outside_the_limits_are_refused(
    chatterbox_engine: Engine, tmp_path: Path, body: bytes, status: int, says: str
) -> None:
    settings = settings_with(
        tmp_path, chatterbox_upload_max_s=4.0, chatterbox_upload_max_bytes=600_000
    )
    async with running_server(chatterbox_engine, settings) as srv:
        answer = await upload(srv, body)
    assert answer.status_code == status
    error = answer.json()
    assert error["type"] == "error" and error["code"] == "invalid_message"
    assert says in error["message"]
    assert list(tmp_path.iterdir()) == []


async def test_uploads_are_off_without_an_upload_dir(chatterbox_engine: Engine) -> None:
    async with running_server(chatterbox_engine, settings_with(None)) as srv:
        answer = await upload(srv, wav_bytes(2.0))
    assert answer.status_code == 404


async def test_uploads_are_off_for_another_engine(piper_engine: Engine, tmp_path: Path) -> None:
    async with running_server(piper_engine, settings_with(tmp_path)) as srv:
        answer = await upload(srv, wav_bytes(2.0))
    assert answer.status_code == 404


async def test_an_uploaded_voice_speaks_on_the_native_protocol(
    chatterbox_engine: Engine, tmp_path: Path
) -> None:
    _, voices = chatterbox_engine.load()  # type: ignore[attr-defined]
    voices.upload_dir = tmp_path  # what chatterbox.upload_dir sets (one model: no reload)
    try:
        async with running_server(chatterbox_engine, settings_with(tmp_path)) as srv:
            voice = (await upload(srv, wav_bytes(3.0))).json()["voice"]
            async with speakstream.connect(srv.stream_url) as conn:
                ctx = await conn.open_context("cloned", voice=voice, encoding="pcm_s16le")
                await ctx.send("Hello there, friend.")
                await ctx.end()
                result = await ctx.collect()
                gone = await conn.open_context("gone", voice="upload:0123456789abcdef")
                await gone.send("Hello.")
                await gone.end()
                refused = await gone.collect()
    finally:
        voices.upload_dir = None
    assert not result.errors, result.errors
    assert len(result.audio) > 0
    assert [e.data["code"] for e in refused.errors] == ["unknown_voice"]


async def test_stored_uploads_are_voices_after_a_restart(
    chatterbox_engine: Engine, tmp_path: Path
) -> None:
    (tmp_path / "00112233445566ff.wav").write_bytes(wav_bytes(2.0))
    (tmp_path / "not-an-id.wav").write_bytes(wav_bytes(2.0))
    async with running_server(chatterbox_engine, settings_with(tmp_path)) as srv:
        voices = srv.runtime.session_config.voices
    assert "upload:00112233445566ff" in voices
    assert not any("not-an-id" in name for name in voices)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wyoming_voice_names(port: int) -> list[str]:
    """``describe`` → ``info`` over a plain TCP socket (one JSON header line, then its data)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b'{"type": "describe"}\n')
        await writer.drain()
        header = json.loads(await reader.readline())
        data = header.get("data") or {}
        if header.get("data_length"):
            data = json.loads(await reader.readexactly(header["data_length"]))
    finally:
        writer.close()
    assert header["type"] == "info"
    return [v["name"] for v in data["tts"][0]["voices"]]


async def test_an_uploaded_voice_is_listed_wherever_voices_are(
    chatterbox_engine: Engine, tmp_path: Path
) -> None:
    port = free_port()
    async with running_server(chatterbox_engine, settings_with(tmp_path), wyoming_port=port) as srv:
        voice = (await upload(srv, wav_bytes(2.0))).json()["voice"]
        async with speakstream.connect(srv.stream_url) as conn:
            ready = conn.ready
        async with httpx.AsyncClient() as client:
            openai = (await client.get(f"http://127.0.0.1:{srv.port}/v1/audio/voices")).json()
        wyoming = await wyoming_voice_names(port)
    listed = {v["name"]: v for v in ready["capabilities"]["voices"]}
    assert listed[voice] == {"name": voice, "sample_rate_hz": 24_000, "language": "en"}
    assert "default" in listed
    assert voice in [v["id"] for v in openai["data"]]
    assert voice in wyoming and "default" in wyoming


async def test_a_compat_endpoint_accepts_an_uploaded_voice(
    chatterbox_engine: Engine, tmp_path: Path
) -> None:
    """The compatibility endpoints' voice map sees the upload (it used to hold a copy of
    the voices made at start, so an upload spoke the default voice or was refused)."""
    async with running_server(
        chatterbox_engine, settings_with(tmp_path, accept_unknown_voices=False)
    ) as srv:
        voice = (await upload(srv, wav_bytes(2.0))).json()["voice"]
        resolved = srv.runtime.voice_map.resolve(voice)
        unknown = srv.runtime.voice_map.resolve("upload:0123456789abcdef")
    assert resolved == voice
    assert unknown is None
