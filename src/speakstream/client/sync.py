"""A small synchronous wrapper for scripts: one call, one utterance.

from speakstream.client.sync import speak, save
speech = speak("Hello there.")                 # PCM s16le at the voice's rate
save("Hello there.", "hello.ogg")             # format from the suffix
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speakstream.client import (
    DEFAULT_URL,
    FORMAT_BY_SUFFIX,
    AudioChunk,
    Event,
    ServerError,
    connect,
)


@dataclass
class Speech:
    audio: bytes
    encoding: str
    sample_rate_hz: int
    metrics: dict[str, Any]
    segments: list[dict[str, Any]] = field(default_factory=list)


async def _speak(text: str, url: str, start: dict[str, Any]) -> Speech:
    async with connect(url) as conn:
        formats = conn.ready["capabilities"]["encodings"]
        encoding = start.get("encoding", conn.ready["settings"]["encoding"])
        rate = start.get("sample_rate_hz") or formats[encoding]["default_sample_rate_hz"]
        ctx = await conn.open_context("sync", **start)
        await ctx.send(text)
        await ctx.end()
        audio: list[bytes] = []
        segments: list[dict[str, Any]] = []
        async for item in ctx:
            if isinstance(item, AudioChunk):
                audio.append(item.data)
            elif isinstance(item, Event):
                if item.type == "error":
                    raise ServerError(item.data)
                if item.type == "segment":
                    segments.append(item.data)
                if item.type == "done":
                    return Speech(b"".join(audio), encoding, rate, item.data["metrics"], segments)
    raise ConnectionError("the connection ended before the utterance was done")


def speak(text: str, *, url: str = DEFAULT_URL, **start: Any) -> Speech:
    """Speak ``text``; ``start`` takes the ``start`` message's options (voice, encoding,
    sample_rate_hz, speed, volume, ...). Not for use inside a running event loop."""
    return asyncio.run(_speak(text, url, start))


def save(text: str, path: str | Path, *, url: str = DEFAULT_URL, **start: Any) -> Speech:
    """Speak ``text`` into a file whose suffix picks the format (as the CLI's ``-o``;
    an unknown suffix gets WAV)."""
    target = Path(path)
    start.setdefault("encoding", FORMAT_BY_SUFFIX.get(target.suffix.lower(), "wav"))
    speech = speak(text, url=url, **start)
    target.write_bytes(speech.audio)
    return speech
