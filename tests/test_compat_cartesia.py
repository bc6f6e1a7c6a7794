"""Cartesia /tts/websocket against a real server with Piper: the SDK and raw sockets."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
import websockets
from cartesia import AsyncCartesia

from speakstream.engines import Engine
from tests.compat_audio import decoded_duration_s
from tests.compat_server import compat_server
from tests.compat_support import counters_back_to_zero, readme_snippet, run_snippet
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(120)
TEXT = "Cartesia's protocol speaks here. It keeps on going a little longer."
ENCODINGS = {
    "pcm_s16le": "pcm_s16le",
    "pcm_f32le": "pcm_f32le",
    "pcm_mulaw": "mulaw",
    "pcm_alaw": "alaw",
}


def _request(
    cid: str, transcript: str, encoding: str = "pcm_s16le", rate: int = 16000, **more: Any
) -> dict[str, Any]:
    return {
        "context_id": cid,
        "model_id": "sonic-2",
        "transcript": transcript,
        "voice": {"mode": "id", "id": "any-voice"},
        "output_format": {"container": "raw", "encoding": encoding, "sample_rate": rate},
        **more,
    }


@pytest.mark.parametrize(
    ("encoding", "rate"),
    [("pcm_s16le", 16000), ("pcm_f32le", 44100), ("pcm_mulaw", 8000), ("pcm_alaw", 8000)],
)
async def test_sdk_streams_a_context_with_timestamps(
    piper_engine: Engine, encoding: str, rate: int
) -> None:
    async with compat_server(piper_engine) as srv:
        client = AsyncCartesia(api_key="any", websocket_base_url=f"ws://127.0.0.1:{srv.port}")
        connection = await client.tts.websocket_connect().enter()
        try:
            first, second = TEXT.split(". ")
            await connection.send(
                _request(
                    "c1", first + ". ", encoding, rate, add_timestamps=True, **{"continue": True}
                )
            )
            events = []
            while (event := await connection.recv()).type != "chunk":  # audio before the rest
                events.append(event)
            events.append(event)
            await connection.send(
                _request("c1", second, encoding, rate, flush=True, **{"continue": True})
            )
            await connection.send(_request("c1", "", encoding, rate))
            while (event := await connection.recv()).type != "done":
                events.append(event)
        finally:
            await connection.close()
        assert all(e.context_id == "c1" for e in events)
        audio = b"".join(base64.b64decode(e.data) for e in events if e.type == "chunk")
        duration_s = decoded_duration_s(audio, ENCODINGS[encoding], rate)
        words = [w for e in events if e.type == "timestamps" for w in e.word_timestamps.words]
        ends = [t for e in events if e.type == "timestamps" for t in e.word_timestamps.end]
        assert " ".join(words) == TEXT
        assert ends == sorted(ends) and duration_s * 0.7 < ends[-1] <= duration_s + 0.001
        flush = [e for e in events if e.type == "flush_done"]
        assert len(flush) == 1 and flush[0].flush_id == 1
        await wait_for(lambda: srv.runtime.connections == 0 and srv.runtime.active_streams == 0)


async def test_two_contexts_at_once_and_cancel(piper_engine: Engine) -> None:
    async with compat_server(piper_engine) as srv:
        async with websockets.connect(f"{srv.url}/tts/websocket") as ws:
            await ws.send(json.dumps(_request("long", TEXT * 4, **{"continue": True})))
            await ws.send(json.dumps(_request("short", "A second voice, at once.")))
            seen: list[dict[str, Any]] = []
            while not any(r["context_id"] == "long" and r["type"] == "chunk" for r in seen):
                seen.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"context_id": "long", "cancel": True}))
            await ws.send(json.dumps(_request("after", "After the cancel.")))
            # the two short contexts run at once: either may finish first
            done = {"type": "done", "done": True, "status_code": 200}
            while not all({**done, "context_id": c} in seen for c in ("after", "short")):
                seen.append(json.loads(await ws.recv()))
        after = next(i for i, r in enumerate(seen) if r["context_id"] == "after")
        assert not any(r["context_id"] == "long" for r in seen[after:])
        assert {"type": "done", "context_id": "short", "done": True, "status_code": 200} in seen
        assert any(r["context_id"] == "short" and r["type"] == "chunk" for r in seen)
        await wait_for(lambda: srv.runtime.connections == 0 and srv.runtime.active_streams == 0)


async def test_unsupported_format_and_bad_json_answer_errors(piper_engine: Engine) -> None:
    async with compat_server(piper_engine) as srv:
        async with websockets.connect(f"{srv.url}/tts/websocket") as ws:
            bad = _request("x", "Hi.")
            bad["output_format"] = {"container": "mp3", "sample_rate": 44100, "bit_rate": 128000}
            await ws.send(json.dumps(bad))
            error = json.loads(await ws.recv())
            assert (
                error["type"] == "error"
                and error["context_id"] == "x"
                and error["status_code"] == 400
            )
            await ws.send(json.dumps(_request("y", "Hi.", rate=12345)))
            assert json.loads(await ws.recv())["error_code"] == "unsupported_sample_rate"
            await ws.send("{nope")
            assert json.loads(await ws.recv())["error_code"] == "invalid_json"
            await ws.send(json.dumps(_request("z", TEXT * 3, unknown_field=1)))
            assert json.loads(await ws.recv())["type"] in ("chunk", "timestamps")
        await wait_for(lambda: srv.runtime.connections == 0 and srv.runtime.active_streams == 0)


async def test_the_readme_websocket_snippet_runs(piper_engine: Engine, tmp_path: Path) -> None:
    async with compat_server(piper_engine) as srv:
        code = readme_snippet("cartesia-ws")
        await asyncio.to_thread(run_snippet, code, f"http://127.0.0.1:{srv.port}", tmp_path)
        audio = (tmp_path / "cartesia.pcm").read_bytes()
        assert decoded_duration_s(audio, "pcm_s16le", 24000) > 1.0
        await counters_back_to_zero(srv.runtime)
