"""A small synchronous wrapper for scripts: one call, one utterance.

from speakstream.client.sync import speak, save
speech = speak("Hello there.")                 # PCM s16le at the voice's rate
save("Hello there.", "hello.ogg")             # format from the suffix

The server is ``url``, else ``SPEAKSTREAM_URL``, else ``ws://127.0.0.1:8000/v1/stream``
(as the command line). ``save`` writes through ``AudioFile``: a complete file or none,
and a WAV file with its real sizes in the header.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speakstream.client import AudioChunk, Event, connect, default_url
from speakstream.client.files import AudioFile, encoding_for_path


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

        def keep(item: AudioChunk | Event) -> None:
            if isinstance(item, AudioChunk):
                audio.append(item.data)
            elif item.type == "segment":
                segments.append(item.data)

        end = await ctx.drain(keep)
        if end.type != "done":
            raise ConnectionError(f"the utterance ended with {end.type!r}, not 'done'")
        return Speech(b"".join(audio), encoding, rate, end.data["metrics"], segments)


def speak(text: str, *, url: str | None = None, **start: Any) -> Speech:
    """Speak ``text``; ``start`` takes the ``start`` message's options (voice, encoding,
    sample_rate_hz, speed, volume, ...). Not for use inside a running event loop."""
    return asyncio.run(_speak(text, url or default_url(), start))


def save(text: str, path: str | Path, *, url: str | None = None, **start: Any) -> Speech:
    """Speak ``text`` into a file whose suffix picks the format (as the CLI's ``-o``;
    an unknown suffix gets WAV). An ``encoding`` that the suffix contradicts raises
    ``FileFormatError`` (a ``ValueError``) before anything is sent."""
    target = Path(path)
    start["encoding"] = encoding_for_path(target, start.get("encoding"), default="wav")
    speech = speak(text, url=url, **start)
    with AudioFile(target, speech.encoding) as out:
        out.write(speech.audio)
    return speech
