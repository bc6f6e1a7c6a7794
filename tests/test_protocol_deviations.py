"""Where the server deviated from docs/protocol.md (issue 14, defect 9), against a real server.

Each test states the documented behaviour and checks it on the wire. The scripted fake
engine speaks (these are protocol tests: which frames and events, not how they sound).
Each test failed on the code before the fix of the deviation it checks.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from speakstream.protocol.frames import unpack_audio_frame
from tests.conftest import RunningServer, running_server

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def server(fake_engine_factory: Any) -> Any:
    async with running_server(fake_engine_factory()) as srv:
        yield srv


async def ready_client(server: RunningServer) -> websockets.ClientConnection:
    ws = await websockets.connect(server.stream_url, max_size=None)
    assert json.loads(await ws.recv())["type"] == "ready"
    return ws


async def send(ws: websockets.ClientConnection, **message: Any) -> None:
    await ws.send(json.dumps(message))


async def until(
    ws: websockets.ClientConnection, kind: str, timeout_s: float = 20.0
) -> list[str | bytes]:
    """Everything received up to and including the first JSON message of type ``kind``."""
    received: list[str | bytes] = []
    async with asyncio.timeout(timeout_s):
        while True:
            message = await ws.recv()
            received.append(message)
            if isinstance(message, str) and json.loads(message)["type"] == kind:
                return received


def events(received: list[str | bytes]) -> list[dict[str, Any]]:
    return [json.loads(m) for m in received if isinstance(m, str)]


async def answer_to(ws: websockets.ClientConnection, message: str) -> dict[str, Any]:
    """The first JSON message after sending ``message`` (a ping behind it bounds the wait)."""
    await ws.send(message)
    await send(ws, type="ping", id="after")
    [first, *_] = events(await until(ws, "pong"))
    return first


def is_error(event: dict[str, Any], code: str) -> bool:
    return event["type"] == "error" and event["code"] == code


async def test_every_audio_frame_is_on_a_stream_a_segment_announced(server: RunningServer) -> None:
    ws = await ready_client(server)
    await send(ws, type="start", context="w", encoding="wav")
    await send(ws, type="end", context="w")
    received = await until(ws, "done")
    announced: set[int] = set()
    for message in received:
        if isinstance(message, str):
            event = json.loads(message)
            if event["type"] == "segment":
                announced.add(event["stream"])
        else:
            header, _ = unpack_audio_frame(message)
            assert header.stream in announced, "audio on a stream no segment event named"
    await ws.close()


@pytest.mark.parametrize("encoding", ["opus", "mp3", "mulaw"])
async def test_the_last_frame_carries_the_last_segment(
    server: RunningServer, encoding: str
) -> None:
    # The fake engine makes no audio for text without letters: the last segment is silent.
    ws = await ready_client(server)
    await send(ws, type="start", context="t", encoding=encoding)
    await send(ws, type="text", context="t", text="Hello there. Speak now. ... ")
    await send(ws, type="end", context="t")
    received = await until(ws, "done")
    last_seq = max(e["seq"] for e in events(received) if e["type"] == "segment")
    frames = [unpack_audio_frame(m)[0] for m in received if isinstance(m, bytes)]
    assert frames and last_seq >= 2
    assert frames[-1].segment == last_seq
    await ws.close()


async def test_flush_after_end_is_answered(server: RunningServer) -> None:
    ws = await ready_client(server)
    await send(ws, type="text", context="f", text="Hello there, how are you today? ")
    await send(ws, type="end", context="f")
    await send(ws, type="flush", context="f")
    received = events(await until(ws, "done"))
    await send(ws, type="ping", id="after")
    received += events(await until(ws, "pong"))
    answers = [e for e in received if e["type"] == "flushed" or is_error(e, "context_ended")]
    assert len(answers) == 1, f"flush after end answered by {answers}"
    await ws.close()


async def test_ping_with_an_unknown_field_is_invalid(server: RunningServer) -> None:
    ws = await ready_client(server)
    answer = await answer_to(ws, json.dumps({"type": "ping", "id": 1, "idd": 2}))
    assert is_error(answer, "invalid_message"), answer
    await ws.close()


@pytest.mark.parametrize(
    "message",
    [
        {"type": "start", "context": "n", "voice": None},
        {"type": "start", "context": "n", "speed": None},
        {"type": "ping", "id": None},
    ],
    ids=["start-voice", "start-speed", "ping-id"],
)
async def test_null_for_an_optional_field_is_invalid(
    server: RunningServer, message: dict[str, Any]
) -> None:
    ws = await ready_client(server)
    answer = await answer_to(ws, json.dumps(message))
    assert is_error(answer, "invalid_message"), answer
    await ws.close()


async def test_empty_text_is_invalid(server: RunningServer) -> None:
    ws = await ready_client(server)
    answer = await answer_to(ws, json.dumps({"type": "text", "context": "e", "text": ""}))
    assert is_error(answer, "invalid_message"), answer
    await ws.close()


async def test_a_second_cancel_gets_unknown_context(server: RunningServer) -> None:
    ws = await ready_client(server)
    await send(ws, type="text", context="c", text="Hello there, how are you today? ")
    await send(ws, type="cancel", context="c")
    await send(ws, type="cancel", context="c")
    await send(ws, type="ping", id="after")
    received = events(await until(ws, "pong"))
    about_c = [e for e in received if e.get("context") == "c" and e["type"] != "segment"]
    assert [e["type"] for e in about_c] == ["cancelled", "error"], about_c
    assert about_c[1]["code"] == "unknown_context"
    await ws.close()


async def test_done_of_an_empty_context_has_documented_metrics(server: RunningServer) -> None:
    # docs/protocol.md: ttfa_ms, first_segment_ms and rtf are null when the context had no
    # audio, no segment, no audio; everything else is a number.
    ws = await ready_client(server)
    await send(ws, type="start", context="empty")
    await send(ws, type="end", context="empty")
    [*_, done] = events(await until(ws, "done"))
    nulls = sorted(name for name, value in done["metrics"].items() if value is None)
    assert nulls == ["first_segment_ms", "rtf", "ttfa_ms"]
    assert done["metrics"]["duration_ms"] >= 0 and done["metrics"]["audio_ms"] == 0
    await ws.close()
