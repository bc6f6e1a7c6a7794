"""Deepgram /v1/speak against a real server with Piper: the SDK and raw sockets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import websockets
from deepgram import DeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from deepgram.speak.v1.types.speak_v1text import SpeakV1Text

from speakstream.engines import Engine
from tests.compat_audio import decoded_duration_s
from tests.compat_server import compat_server
from tests.compat_support import counters_back_to_zero, readme_snippet, run_snippet
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(120)
TEXT = "Hello from Deepgram's protocol. This sentence keeps going for a while longer."


async def test_sdk_speak_flush_close(piper_engine: Engine) -> None:
    async with compat_server(piper_engine) as srv:
        base = f"127.0.0.1:{srv.port}"
        env = DeepgramClientEnvironment(
            base=f"http://{base}", production=f"ws://{base}", agent=f"ws://{base}", agent_rest=""
        )
        client = DeepgramClient(api_key="any", environment=env)

        def run() -> tuple[list[object], bytes]:
            events: list[object] = []
            audio = b""
            with client.speak.v1.connect(
                model="aura-asteria-en", encoding="mulaw", sample_rate=8000
            ) as socket:
                socket.send_text(SpeakV1Text(text=TEXT))
                socket.send_flush()
                for message in socket:
                    if isinstance(message, bytes):
                        audio += message
                        continue
                    events.append(message)
                    if getattr(message, "type", None) == "Flushed":
                        socket.send_close()
            return events, audio

        events, audio = await asyncio.to_thread(run)
        kinds = [getattr(e, "type", None) for e in events]
        assert kinds[0] == "Metadata" and kinds[-1] == "Flushed"
        assert getattr(events[-1], "sequence_id", None) == 0
        assert decoded_duration_s(audio, "mulaw", 8000) > 2.0
        await wait_for(lambda: srv.runtime.connections == 0 and srv.runtime.active_streams == 0)


async def test_clear_mid_utterance_then_speak_again(piper_engine: Engine) -> None:
    async with compat_server(piper_engine) as srv:
        url = f"{srv.url}/v1/speak?encoding=linear16&sample_rate=16000"
        async with websockets.connect(url) as ws:
            assert json.loads(await ws.recv())["type"] == "Metadata"
            await ws.send(json.dumps({"type": "Speak", "text": TEXT * 3}))
            await ws.send(json.dumps({"type": "Flush"}))
            while not isinstance(await ws.recv(), bytes):
                pass
            await ws.send(json.dumps({"type": "Clear"}))
            while (reply := await ws.recv()) and not (
                isinstance(reply, str) and json.loads(reply)["type"] == "Cleared"
            ):
                pass
            assert json.loads(reply) == {"type": "Cleared", "sequence_id": 0}
            await ws.send(json.dumps({"type": "Speak", "text": "Short."}))
            await ws.send(json.dumps({"type": "Flush"}))
            after = b""
            while isinstance(reply := await ws.recv(), bytes):
                after += reply
            assert json.loads(reply) == {"type": "Flushed", "sequence_id": 0}
            # only "Short." was spoken after the acknowledgement: well under the long text
            assert 0.2 < decoded_duration_s(after, "pcm_s16le", 16000) < 2.5
            await ws.send(json.dumps({"type": "Close"}))
            tail = b""  # the resampler's last samples come with the end of the utterance
            with pytest.raises(websockets.ConnectionClosedOK):
                while True:
                    frame = await ws.recv()
                    assert isinstance(frame, bytes)
                    tail += frame
            assert decoded_duration_s(tail, "pcm_s16le", 16000) < 0.1 if tail else True
        await wait_for(lambda: srv.runtime.connections == 0 and srv.runtime.active_streams == 0)


async def test_unsupported_query_is_http_400(piper_engine: Engine) -> None:
    async with compat_server(piper_engine) as srv:
        for query in (
            "encoding=opus",
            "encoding=linear16&sample_rate=11025",
            "encoding=mulaw&sample_rate=44100",
        ):
            with pytest.raises(websockets.InvalidStatus) as info:
                async with websockets.connect(f"{srv.url}/v1/speak?{query}"):
                    pass
            assert info.value.response.status_code == 400
            assert b"INVALID_QUERY_PARAMETER" in info.value.response.body


async def test_bad_json_and_unknown_type_are_warnings(piper_engine: Engine) -> None:
    async with compat_server(piper_engine) as srv:
        async with websockets.connect(f"{srv.url}/v1/speak") as ws:
            assert json.loads(await ws.recv())["type"] == "Metadata"
            await ws.send("{oops")
            assert json.loads(await ws.recv())["type"] == "Warning"
            await ws.send(json.dumps({"type": "Dance"}))
            assert json.loads(await ws.recv())["type"] == "Warning"
            await ws.send(json.dumps({"type": "Speak", "text": TEXT, "extra": True}))
        await wait_for(lambda: srv.runtime.connections == 0 and srv.runtime.active_streams == 0)


async def test_the_readme_websocket_snippet_runs(piper_engine: Engine, tmp_path: Path) -> None:
    async with compat_server(piper_engine) as srv:
        code = readme_snippet("deepgram-ws")
        await asyncio.to_thread(run_snippet, code, f"http://127.0.0.1:{srv.port}", tmp_path)
        audio = (tmp_path / "deepgram.pcm").read_bytes()
        assert decoded_duration_s(audio, "pcm_s16le", 16000) > 1.0
        await counters_back_to_zero(srv.runtime)
