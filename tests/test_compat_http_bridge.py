"""The HTTP bridge: one request as one connection. In memory (the bridge alone) and over
raw HTTP for what no SDK does: leaving early, not reading, a draining server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from speakstream.engines import Engine
from speakstream.server.compat.http_bridge import END_OF_BODY, BodyAborted, HttpBridge
from tests.compat_support import LONG_TEXT, counters_back_to_zero, http_url
from tests.conftest import running_server

pytestmark = pytest.mark.timeout(120)

CARTESIA_F32 = {
    "model_id": "sonic-2",
    "transcript": LONG_TEXT,
    "voice": {"mode": "id", "id": "any"},
    "output_format": {"container": "raw", "encoding": "pcm_f32le", "sample_rate": 48000},
}


async def test_the_body_ends_at_the_marker_and_the_connection_then_sees_a_disconnect() -> None:
    bridge = HttpBridge(queue_chunks=4)
    assert (await bridge.receive())["type"] == "websocket.receive"
    await bridge.send_bytes(b"one")
    await bridge.send_text("two")
    await bridge.send_bytes(END_OF_BODY)
    assert [chunk async for chunk in bridge.body()] == [b"one", b"two"]
    assert bridge.ended
    assert (await bridge.receive())["type"] == "websocket.disconnect"
    with pytest.raises(OSError):
        await bridge.send_bytes(b"late")


async def test_a_close_with_a_full_queue_still_ends_the_body() -> None:
    bridge = HttpBridge(queue_chunks=2)
    await bridge.send_bytes(b"a")
    await bridge.send_bytes(b"b")
    blocked = asyncio.ensure_future(bridge.send_bytes(b"c"))  # no room: the client is slow
    await asyncio.sleep(0)
    assert not blocked.done()
    blocked.cancel()  # the connection's write deadline
    await bridge.close(1008)
    with pytest.raises(BodyAborted):  # the response breaks off: it must not look complete
        [chunk async for chunk in bridge.body()]
    assert not bridge.ended


async def request_head(port: int, path: str, body: dict[str, object]) -> bytes:
    data = json.dumps(body).encode()
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode() + data


async def test_a_client_that_leaves_early_stops_the_work(piper_engine: Engine) -> None:
    async with running_server(piper_engine, write_timeout_s=600) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(await request_head(srv.port, "/tts/bytes", CARTESIA_F32))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert await reader.read(1024)  # audio is coming
        assert srv.runtime.active_streams == 1
        writer.close()
        await counters_back_to_zero(srv.runtime)


async def test_a_client_that_stops_reading_is_let_go_at_the_write_deadline(
    piper_engine: Engine,
) -> None:
    async with running_server(piper_engine, write_timeout_s=1.0) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(await request_head(srv.port, "/tts/bytes", CARTESIA_F32))
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")
        # read nothing more: the body queue and the socket fill, the write deadline passes
        await counters_back_to_zero(srv.runtime)
        writer.close()


async def test_a_draining_server_refuses_in_each_vendors_shape(piper_engine: Engine) -> None:
    async with running_server(piper_engine) as srv:
        srv.runtime.shutting_down = True
        async with httpx.AsyncClient(base_url=http_url(srv)) as raw:
            openai = await raw.post(
                "/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "Hi."}
            )
            eleven = await raw.post("/v1/text-to-speech/x/stream", json={"text": "Hi."})
            deepgram = await raw.post("/v1/speak", json={"text": "Hi."})
            cartesia = await raw.post("/tts/bytes", json={**CARTESIA_F32, "transcript": "Hi."})
        srv.runtime.shutting_down = False
    assert [r.status_code for r in (openai, eleven, deepgram, cartesia)] == [503] * 4
    assert openai.json()["error"]["code"] == "server_shutting_down"
    assert eleven.json()["detail"]["status"] == "system_busy"
    assert "err_code" in deepgram.json()
    assert "error_code" in cartesia.json()


async def test_an_error_while_streaming_breaks_raw_audio_off_and_ends_sse_with_an_event(
    fake_engine_factory: Any,
) -> None:
    engine = fake_engine_factory(fail_on="boom")
    text = "Hello there, my friend. " * 3 + "And then a boom happens here."
    speech = {"model": "tts-1", "voice": "alloy", "input": text, "response_format": "pcm"}
    async with running_server(engine) as srv, httpx.AsyncClient(base_url=http_url(srv)) as raw:
        with pytest.raises(httpx.RemoteProtocolError):  # an incomplete body, not a short file
            async with raw.stream("POST", "/v1/audio/speech", json=speech) as response:
                assert response.status_code == 200
                async for _ in response.aiter_bytes():
                    pass
        sse = await raw.post("/v1/audio/speech", json={**speech, "stream_format": "sse"})
        events = [json.loads(b.removeprefix("data: ")) for b in sse.text.split("\n\n") if b]
        assert events[0]["type"] == "speech.audio.delta"
        assert events[-1]["type"] == "error"
        assert events[-1]["error"]["code"] == "synthesis_failed"
        await counters_back_to_zero(srv.runtime)
