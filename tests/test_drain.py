"""Graceful drain (server.drain) of a real `speakstream serve` process.

SIGTERM during five active streams: /readyz fails at once, a new handshake gets 503 with
Retry-After, every utterance is delivered whole (the same segments as an undisturbed
run, all the audio the server made for them, as long as the undisturbed run's audio
within Piper's own run-to-run variation),
then each socket closes with 1001 and the process exits 0. A second SIGTERM exits at
once; contexts still open at drain_timeout_s are closed with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from speakstream.protocol.frames import unpack_audio_frame

pytestmark = pytest.mark.timeout(180)

FIRST = "Draining is graceful. "
SECONDS = [
    "The first stream keeps talking until it is done.",
    "A second stream reads a sentence about the weather.",
    "The third one counts to three: one, two, three.",
    "Number four says that the server is going away.",
    "And the fifth stream simply says goodbye to everyone.",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    def http(self, path: str) -> tuple[int, dict[str, Any]]:
        return get(f"http://127.0.0.1:{self.port}{path}")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, *flags: str) -> AsyncIterator[Served]:
    """A `speakstream serve` process on a free port, its log in a file; killed at the end."""
    port = free_port()
    command = [sys.executable, "-m", "speakstream", "serve", "--port", str(port), *flags]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPEAKSTREAM_")}
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)  # noqa: ASYNC220
    served = Served(proc, port, log_path)
    try:
        async with asyncio.timeout(90):
            while True:
                assert proc.poll() is None, served.log()
                with contextlib.suppress(OSError):
                    if (await asyncio.to_thread(served.http, "/readyz"))[0] == 200:
                        break
                await asyncio.sleep(0.1)
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


@dataclass
class Stream:
    """One connection with one context, its text sent in two parts."""

    context: str
    rest: str
    audio_bytes: int = 0
    done_audio_ms: float = 0.0  # what the server says it produced
    segments: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    first_audio: asyncio.Event = field(default_factory=asyncio.Event)


async def run_stream(url: str, stream: Stream, go_on: asyncio.Event, until_closed: bool) -> None:
    async with websockets.connect(url, max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        await ws.send(json.dumps({"type": "text", "context": stream.context, "text": FIRST}))
        done = False
        sent_rest = False
        try:
            while True:
                if stream.first_audio.is_set() and go_on.is_set() and not sent_rest:
                    sent_rest = True
                    text = {"type": "text", "context": stream.context, "text": stream.rest}
                    await ws.send(json.dumps(text))
                    await ws.send(json.dumps({"type": "end", "context": stream.context}))
                try:
                    async with asyncio.timeout(0.05):
                        frame = await ws.recv()
                except TimeoutError:
                    continue
                if isinstance(frame, bytes):
                    stream.audio_bytes += len(unpack_audio_frame(frame)[1])
                    stream.first_audio.set()
                    continue
                message = json.loads(frame)
                if message["type"] == "segment":
                    stream.segments.append(message["text"])
                elif message["type"] == "error":
                    stream.errors.append(message)
                elif message["type"] == "done":
                    done = True
                    stream.done_audio_ms = message["metrics"]["audio_ms"]
                    if not until_closed:
                        break
        except ConnectionClosed:
            pass
        assert done, f"{stream.context}: closed before done"
        stream.close_code = ws.close_code


async def five_streams(
    url: str, go_on: asyncio.Event, until_closed: bool
) -> tuple[list[Stream], list[Any]]:
    streams = [Stream(f"c{i}", rest) for i, rest in enumerate(SECONDS)]
    tasks = [asyncio.create_task(run_stream(url, s, go_on, until_closed)) for s in streams]
    return streams, tasks


async def test_sigterm_during_five_streams_delivers_every_utterance_then_1001(
    tmp_path: Path,
) -> None:
    async with serve(tmp_path, "--engine", "piper", "--log-format", "json") as served:
        # The undisturbed run: the same streams, the same way, no signal.
        go_on = asyncio.Event()
        calm, tasks = await five_streams(served.ws_url, go_on, until_closed=False)
        async with asyncio.timeout(60):
            for stream in calm:
                await stream.first_audio.wait()
        go_on.set()
        await asyncio.gather(*tasks)

        go_on = asyncio.Event()
        streams, tasks = await five_streams(served.ws_url, go_on, until_closed=True)
        async with asyncio.timeout(60):
            for stream in streams:
                await stream.first_audio.wait()  # every stream is active
        served.signal(signal.SIGTERM)
        async with asyncio.timeout(10):  # /readyz fails at once
            while (await asyncio.to_thread(served.http, "/readyz"))[0] != 503:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert (await asyncio.to_thread(served.http, "/readyz"))[1]["reason"] == "draining"
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(served.ws_url):
                pass
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"]
        assert json.loads(refused.value.response.body or b"{}")["code"] == "server_shutting_down"
        go_on.set()  # the clients finish their utterances
        await asyncio.gather(*tasks)
        code = await asyncio.to_thread(served.proc.wait, 30)
        log = served.log()

    assert code == 0, log
    for stream, before in zip(streams, calm, strict=True):
        assert not stream.errors, stream.errors
        assert "".join(stream.segments) == FIRST + stream.rest  # the whole utterance
        # (where it is cut may differ from the calm run's: with five streams at once the
        # segments' lengths follow the engine's backlog)
        audio_ms = stream.audio_bytes / 2 / 22.050
        assert audio_ms == pytest.approx(stream.done_audio_ms, abs=1)  # nothing cut
        # Piper samples its durations (noise_w): two runs of one text differ by a few %,
        # and a cut made in one run and not the other adds or takes a short pause
        assert audio_ms == pytest.approx(before.audio_bytes / 2 / 22.050, rel=0.12)
        assert stream.close_code == 1001
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    closed = [line for line in lines if line.get("event") == "connection closed"]
    assert sum(line["close_code"] == 1001 for line in closed) == 5
    contexts = [line for line in lines if line.get("event") == "context done"]
    assert len(contexts) == 10 and all(line["characters"] > 0 for line in contexts)


async def test_second_sigterm_exits_at_once(tmp_path: Path) -> None:
    async with (
        serve(tmp_path, "--engine", "fake", "--drain-timeout-s", "3600") as served,
        websockets.connect(served.ws_url) as ws,
    ):
        await ws.recv()
        # a context that never ends: the drain would wait for it for an hour
        await ws.send(json.dumps({"type": "text", "context": "a", "text": "never ends"}))
        await ws.recv()
        served.signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            while (await asyncio.to_thread(served.http, "/readyz"))[0] != 503:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        served.signal(signal.SIGTERM)
        code = await asyncio.to_thread(served.proc.wait, 30)
    assert code == 128 + signal.SIGTERM


async def test_contexts_still_open_at_drain_timeout_get_1001(tmp_path: Path) -> None:
    async with serve(tmp_path, "--engine", "fake", "--drain-timeout-s", "0.5") as served:
        async with websockets.connect(served.ws_url) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "text", "context": "a", "text": "never ends"}))
            served.signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(30):
                    while True:
                        await ws.recv()
            assert ws.close_code == 1001
        code = await asyncio.to_thread(served.proc.wait, 30)
    assert code == 0
