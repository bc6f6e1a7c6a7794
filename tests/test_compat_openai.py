"""OpenAI's speech API through the official ``openai`` SDK against the real server (Piper)."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from speakstream.engines import Engine
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


def client(srv: RunningServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{http_url(srv)}/v1", api_key="unused", max_retries=0)


async def speak(srv: RunningServer, **params: Any) -> tuple[bytes, httpx.Headers]:
    params = {"model": "tts-1", "voice": "alloy", "input": SHORT_TEXT, **params}
    async with client(srv).audio.speech.with_streaming_response.create(**params) as response:
        return await response.read(), response.headers


async def test_every_format_decodes_to_the_native_duration(piper_server: RunningServer) -> None:
    native_s = await native_seconds(piper_server, SHORT_TEXT)
    for fmt in ("mp3", "opus", "aac", "flac", "wav"):
        audio, headers = await speak(piper_server, response_format=fmt)
        assert_duration(decode_seconds(audio), native_s)
        assert headers["content-type"].startswith(
            {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac"}.get(fmt, f"audio/{fmt}")
        )
    audio, headers = await speak(piper_server, response_format="pcm")
    assert headers["content-type"] == "audio/pcm"
    assert len(audio) % 2 == 0
    assert_duration(raw_seconds(audio, "s16le", 24000), native_s)  # 24 kHz, as OpenAI's
    await counters_back_to_zero(piper_server.runtime)


async def test_sse_sends_deltas_then_done_with_usage(piper_server: RunningServer) -> None:
    native_s = await native_seconds(piper_server, SHORT_TEXT)
    audio, headers = await speak(piper_server, response_format="pcm", stream_format="sse")
    assert headers["content-type"].startswith("text/event-stream")
    events = [
        json.loads(block.removeprefix("data: "))
        for block in audio.decode().split("\n\n")
        if block.strip()
    ]
    assert {e["type"] for e in events[:-1]} == {"speech.audio.delta"}
    done = events[-1]
    assert done["type"] == "speech.audio.done"
    usage = done["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert_duration(raw_seconds(pcm, "s16le", 24000), native_s)


async def test_first_bytes_leave_before_the_text_is_spoken_and_leaving_stops_the_work(
    piper_engine: Engine,
) -> None:
    # A write deadline far past the wait below: only noticing the client leave ends it.
    async with running_server(piper_engine, write_timeout_s=600) as srv:
        runtime = srv.runtime
        params: dict[str, Any] = {"model": "tts-1", "voice": "alloy", "input": LONG_TEXT}
        async with client(srv).audio.speech.with_streaming_response.create(
            **params, response_format="pcm"
        ) as response:
            async for chunk in response.iter_bytes():
                assert chunk
                break
            # the first bytes are here; the context's stream is still open (no done yet)
            assert runtime.active_streams == 1
        await counters_back_to_zero(runtime)


async def test_instructions_are_accepted_and_said_to_be_ignored(
    piper_server: RunningServer,
) -> None:
    audio, headers = await speak(piper_server, response_format="wav", instructions="Be cheerful.")
    assert headers["x-speakstream-ignored"] == "instructions"
    assert decode_seconds(audio) > 2


async def test_errors_have_openai_shape_and_status(piper_engine: Engine) -> None:
    async with running_server(piper_engine, accept_unknown_voices=False, max_text_chars=200) as srv:
        api = client(srv)
        cases: list[tuple[dict[str, Any], str, str | None]] = [
            ({"voice": "alloy"}, "voice", "invalid_value"),
            ({"voice": "en_US-joe-medium", "response_format": "ogg"}, "response_format", None),
            ({"voice": "en_US-joe-medium", "input": "x" * 201}, "input", "text_too_long"),
            ({"voice": "en_US-joe-medium", "speed": 9}, "speed", None),
        ]
        for changes, param, code in cases:
            params = {"model": "tts-1", "input": "Hello.", **changes}
            with pytest.raises(openai.BadRequestError) as caught:
                await api.audio.speech.create(**params)
            body = caught.value.body
            assert isinstance(body, dict)
            assert caught.value.status_code == 400
            assert body["type"] == "invalid_request_error" and body["param"] == param
            if code:
                assert body["code"] == code
        # what the SDK does not send: a missing field, an unknown one, a body that is not JSON
        async with httpx.AsyncClient(base_url=http_url(srv)) as raw:
            missing = await raw.post("/v1/audio/speech", json={"model": "tts-1", "voice": "a"})
            unknown = await raw.post(
                "/v1/audio/speech",
                json={"model": "tts-1", "voice": "a", "input": "Hi.", "pitch": 2},
            )
            broken = await raw.post("/v1/audio/speech", content=b"{not json")
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == "missing_required_parameter"
        assert missing.json()["error"]["param"] == "input"
        assert unknown.status_code == 400
        assert unknown.json()["error"]["code"] == "unknown_parameter"
        assert broken.status_code == 400 and "JSON" in broken.json()["error"]["message"]
        assert srv.runtime.connections == 0


async def test_too_many_connections_is_a_429(piper_engine: Engine) -> None:
    async with running_server(piper_engine, max_connections=1) as srv:
        srv.runtime.connections = 1  # as if one were being served
        try:
            with pytest.raises(openai.RateLimitError):
                await client(srv).audio.speech.create(model="tts-1", voice="alloy", input="Hi.")
        finally:
            srv.runtime.connections = 0


async def test_models_and_voices_list_what_exists(piper_engine: Engine) -> None:
    async with running_server(piper_engine, voice_map="alloy=en_US-joe-medium") as srv:
        models = await client(srv).models.list()
        assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"} <= {m.id for m in models.data}
        async with httpx.AsyncClient(base_url=http_url(srv)) as raw:
            voices = (await raw.get("/v1/audio/voices")).json()
    by_id = {v["id"]: v for v in voices["data"]}
    assert by_id["alloy"]["speaks_as"] == "en_US-joe-medium"
    assert "en_US-joe-medium" in by_id


async def test_the_readme_snippet_runs(piper_server: RunningServer, tmp_path: Path) -> None:
    code = readme_snippet("openai")
    await asyncio.to_thread(run_snippet, code, http_url(piper_server), tmp_path)
    assert decode_seconds((tmp_path / "openai.wav").read_bytes()) > 0.5
