"""The peer servers of the benchmarks: started on loopback with our voice, always stopped."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import pytest

from speakstream.bench import listeners, peers

pytestmark = pytest.mark.timeout(180)
TEXT = "The package left our warehouse on Tuesday morning."


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize("kind", peers.PEER_KINDS)
async def test_a_peer_starts_speaks_the_text_and_is_stopped(kind: str) -> None:
    reason = peers.missing(kind)
    if reason is not None:
        pytest.skip(reason)
    async with peers.peer(kind) as running:
        assert running.host == "127.0.0.1"
        if kind == "wyoming-piper":
            heard = await listeners.wyoming(running.port, TEXT, streaming=False)
        else:
            heard = await listeners.piper_http(running.port, TEXT)
        pid = running.pid
        assert not _gone(pid)
    assert heard.errors == []
    assert heard.ttfa_ms is not None
    assert 1.5 < heard.audio_s < 6.0  # a sentence of speech, not a header or silence
    assert _gone(pid)


async def test_wyoming_piper_streams_text_chunks_into_audio() -> None:
    reason = peers.missing("wyoming-piper")
    if reason is not None:
        pytest.skip(reason)
    async with peers.wyoming_piper() as running:
        heard = await listeners.wyoming(running.port, TEXT, streaming=True, pace_tokens_per_s=100)
    assert heard.errors == []
    assert 1.5 < heard.audio_s < 6.0


async def test_a_peer_that_does_not_come_up_is_reported_and_stopped() -> None:
    async def never_ready(port: int) -> None:
        raise OSError("refused")

    marker = f"time.sleep(60)  # peer-test-{os.getpid()}"
    argv = [sys.executable, "-c", f"import time; {marker}"]
    peers.READY_TIMEOUT_S, saved = 1.0, peers.READY_TIMEOUT_S
    try:
        with pytest.raises(RuntimeError, match="did not start"):
            async with peers._process("sleeper", argv, 1, never_ready, None):
                pass
    finally:
        peers.READY_TIMEOUT_S = saved
    assert not _running_with(marker)


def _running_with(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes().decode():
                found.append(entry.name)
    return found


def test_unknown_peers_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="wyoming-piper"):
        peers.peer("nope")
