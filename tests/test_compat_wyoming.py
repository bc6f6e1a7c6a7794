"""Wyoming over TCP against a real server with Piper, with the wyoming package's client."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
)

from speakstream.engines import Engine
from tests.compat_support import counters_back_to_zero, readme_snippet, run_snippet
from tests.conftest import running_server, wait_for

pytestmark = pytest.mark.timeout(120)
SENTENCE = "Home Assistant streams this sentence from a language model, word by word"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(client: AsyncTcpClient, kind: str) -> list[Event]:
    events = []
    while True:
        event = await client.read_event()
        assert event is not None, f"connection closed before {kind}"
        events.append(event)
        if event.type == kind:
            return events


async def test_describe_synthesize_and_streaming(piper_engine: Engine) -> None:
    port = _free_port()
    async with running_server(piper_engine, wyoming_port=port) as srv:
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())
            info = Info.from_event(await client.read_event())  # type: ignore[arg-type]
            assert info.tts[0].supports_synthesize_streaming
            assert [v.name for v in info.tts[0].voices] == ["en_US-joe-medium"]

            await client.write_event(Synthesize(text="Hello there. How are you?").event())
            events = await _until(client, AudioStop().event().type)
            assert AudioStart.is_type(events[0].type)
            chunks = [AudioChunk.from_event(e) for e in events if AudioChunk.is_type(e.type)]
            assert chunks and all(
                c.rate == 22050 and c.width == 2 and c.channels == 1 for c in chunks
            )

            # streaming: audio comes before the sentence ends or the stream stops
            await client.write_event(SynthesizeStart().event())
            for word in SENTENCE.split()[:6]:
                await client.write_event(SynthesizeChunk(text=word + " ").event())
            events = await _until(client, AudioChunk(22050, 2, 1, b"").event().type)
            for word in SENTENCE.split()[6:]:
                await client.write_event(SynthesizeChunk(text=word + " ").event())
            await client.write_event(Synthesize(text=SENTENCE).event())  # for old servers: ignored
            await client.write_event(SynthesizeStop().event())
            events += await _until(client, SynthesizeStopped().event().type)
            kinds = [e.type for e in events]
            assert kinds.count("audio-start") == 1 and kinds.count("audio-stop") == 1
            assert kinds[-2:] == ["audio-stop", "synthesize-stopped"]
        await wait_for(lambda: srv.runtime.connections == 0 and srv.runtime.active_streams == 0)
    with pytest.raises(OSError):  # the listener stopped with the app
        async with AsyncTcpClient("127.0.0.1", port) as client:
            await client.write_event(Describe().event())


async def test_several_clients_at_once(piper_engine: Engine) -> None:
    port = _free_port()
    async with running_server(piper_engine, wyoming_port=port) as srv:

        async def one(i: int) -> int:
            async with AsyncTcpClient("127.0.0.1", port) as client:
                await client.write_event(Synthesize(text=f"Client number {i} speaks now.").event())
                events = await _until(client, "audio-stop")
                return sum(len(e.payload or b"") for e in events)

        sizes = await asyncio.gather(*(one(i) for i in range(4)))
        assert all(size > 22050 for size in sizes)  # each got at least half a second
        assert srv.runtime.connections_total == 4
        await wait_for(lambda: srv.runtime.connections == 0 and srv.runtime.active_streams == 0)


async def test_garbage_is_an_error_event(piper_engine: Engine) -> None:
    port = _free_port()
    async with running_server(piper_engine, wyoming_port=port) as srv:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"this is not json\n")
        writer.write(b'{"type": "synthesize-chunk", "data": {"text": "x"}}\n')
        await writer.drain()
        first = await reader.readline()
        assert b'"error"' in first
        writer.close()
        await wait_for(lambda: srv.runtime.connections == 0)


async def test_off_by_default(piper_engine: Engine) -> None:
    async with running_server(piper_engine) as srv:
        assert srv.runtime.settings.wyoming_port == 0


async def test_the_readme_snippet_runs(
    piper_engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _free_port()
    async with running_server(piper_engine, wyoming_port=port) as srv:
        code = readme_snippet("wyoming")
        replace = {'"127.0.0.1", 10200': f'"127.0.0.1", {port}'}
        await asyncio.to_thread(
            run_snippet, code, f"http://127.0.0.1:{srv.port}", tmp_path, replace
        )
        samples = int(capsys.readouterr().out.split()[0])
        assert samples > 22050  # over a second of the voice's 22050 Hz
        await counters_back_to_zero(srv.runtime)
