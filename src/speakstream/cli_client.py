"""Client commands: ``say``, ``stream``, ``type``, ``voices`` (also ``python -m speakstream``).

Each talks to a running server over the native protocol with the Python client, and
writes the audio it receives straight to a file (or an audio player) as it arrives, so
memory stays flat whatever the length of the text.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import IO, Any

from speakstream.audio.encoders import FORMATS
from speakstream.client import (
    DEFAULT_URL,
    FORMAT_BY_SUFFIX,
    AudioChunk,
    ConnectError,
    Connection,
    Context,
    Event,
    ServerError,
    connect,
)

READ_CHARS = 512  # how much text `stream` reads and sends at a time
AHEAD_CHARS = 4000  # how far `stream` lets the text run ahead of the audio


class CommandError(Exception):
    """A failure the user can act on; printed without a traceback."""


def add_client_commands(commands: Any) -> None:
    def common(parser: argparse.ArgumentParser, *, output: bool = True) -> None:
        parser.add_argument(
            "--url",
            default=os.environ.get("SPEAKSTREAM_URL", DEFAULT_URL),
            help=f"server WebSocket URL (default {DEFAULT_URL}, or SPEAKSTREAM_URL)",
        )
        if not output:
            return
        parser.add_argument("-o", "--output", type=Path, help="audio file to write")
        parser.add_argument("--format", help="encoding (default: from the file suffix)")
        parser.add_argument("--rate", type=int, help="sample rate in Hz")
        parser.add_argument("--voice", help="voice (see `speakstream voices`)")
        parser.add_argument("--speed", type=float, help="speaking rate, 1.0 = normal")
        parser.add_argument("--volume", type=float, help="gain, 1.0 = normal")
        parser.add_argument("--play", action="store_true", help="play through aplay/paplay/ffplay")

    say = commands.add_parser("say", help="speak a text into a file (or --play)")
    say.add_argument("text", help="what to say")
    common(say)

    stream = commands.add_parser("stream", help="stream a long text (file or -) into a file")
    stream.add_argument("source", help="text file, or - for standard input")
    stream.add_argument("--quiet", action="store_true", help="no progress line")
    common(stream)

    typ = commands.add_parser("type", help="simulate a typist or an LLM and report latency")
    typ.add_argument("text", nargs="?", help="text to type (default: --file)")
    typ.add_argument("--file", type=Path, help="read the text from a file")
    pace = typ.add_mutually_exclusive_group()
    pace.add_argument("--cps", type=float, default=12.0, help="typist: characters per second (12)")
    pace.add_argument("--tps", type=float, help="LLM: tokens (words) per second instead")
    common(typ)

    voices = commands.add_parser("voices", help="list the server's voices and formats")
    common(voices, output=False)


# --- audio sinks ---------------------------------------------------------------------------


class AudioSink:
    """Where received audio goes: a file (WAV sizes fixed up at the end) or a player."""

    def __init__(self, output: Path | None, encoding: str, rate_hz: int, play: bool) -> None:
        self.encoding = encoding
        self.rate_hz = rate_hz
        self.bytes_written = 0
        # Written beside the target and renamed when complete: a failed command leaves no
        # half-written file, and never clobbers a good one.
        self._target = output
        self._partial = output.with_name(output.name + ".part") if output is not None else None
        self._file: IO[bytes] | None = self._partial.open("wb") if self._partial else None
        self._player: subprocess.Popen[bytes] | None = None
        if play:
            self._player = subprocess.Popen(
                _player_command(encoding, rate_hz), stdin=subprocess.PIPE
            )

    def write(self, data: bytes) -> None:
        self.bytes_written += len(data)
        if self._file is not None:
            self._file.write(data)
        if self._player is not None and self._player.stdin is not None:
            self._player.stdin.write(data)

    def close(self, *, complete: bool) -> None:
        if self._file is not None:
            if self.encoding == "wav" and self.bytes_written >= 44:
                # The stream's header says "unknown length"; a finished file can say it.
                self._file.seek(4)
                self._file.write(struct.pack("<I", self.bytes_written - 8))
                self._file.seek(40)
                self._file.write(struct.pack("<I", self.bytes_written - 44))
            self._file.close()
            if self._partial is not None and self._target is not None:
                if complete:
                    self._partial.replace(self._target)
                else:
                    self._partial.unlink(missing_ok=True)
        if self._player is not None:
            if self._player.stdin is not None:
                self._player.stdin.close()
            self._player.wait()


def _player_command(encoding: str, rate_hz: int) -> list[str]:
    if encoding == "pcm_s16le" and shutil.which("aplay"):
        return ["aplay", "-q", "-f", "S16_LE", "-c", "1", "-r", str(rate_hz)]
    if encoding == "pcm_s16le" and shutil.which("paplay"):
        return ["paplay", "--raw", "--format=s16le", "--channels=1", f"--rate={rate_hz}"]
    if shutil.which("ffplay"):
        fmt = (
            ["-f", "s16le", "-ar", str(rate_hz), "-ch_layout", "mono"]
            if encoding == "pcm_s16le"
            else []
        )
        return ["ffplay", "-nodisp", "-autoexit", "-loglevel", "error", *fmt, "-"]
    raise CommandError(
        "no audio player found (aplay, paplay or ffplay); write a file with -o instead"
    )


def _choose_format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    if args.play:
        return "pcm_s16le"
    if args.output is None:
        raise CommandError(
            "say where the audio goes: -o FILE (e.g. out.wav, out.ogg, out.mp3) or --play"
        )
    encoding = FORMAT_BY_SUFFIX.get(args.output.suffix.lower())
    if encoding is None:
        known = ", ".join(sorted(FORMAT_BY_SUFFIX))
        raise CommandError(
            f"cannot tell the format from {args.output.name!r}; use --format or a suffix: {known}"
        )
    return encoding


def _start_options(args: argparse.Namespace, encoding: str) -> dict[str, Any]:
    options: dict[str, Any] = {"encoding": encoding}
    for key, value in (
        ("voice", args.voice),
        ("sample_rate_hz", args.rate),
        ("speed", args.speed),
        ("volume", args.volume),
    ):
        if value is not None:
            options[key] = value
    return options


@contextlib.asynccontextmanager
async def _session(
    args: argparse.Namespace,
) -> AsyncIterator[tuple[Connection, Context, AudioSink]]:
    encoding = _choose_format(args)
    async with connect(args.url) as conn:
        formats = conn.ready["capabilities"]["encodings"]
        if encoding not in formats:
            raise CommandError(
                f"the server cannot send {encoding!r}; it sends {', '.join(formats)}"
            )
        rate_hz = args.rate or formats[encoding]["default_sample_rate_hz"]
        ctx = await conn.open_context("cli", **_start_options(args, encoding))
        sink = AudioSink(args.output, encoding, rate_hz, args.play)
        complete = False
        try:
            yield conn, ctx, sink
            complete = True
        finally:
            sink.close(complete=complete)


async def _drain(ctx: Context, sink: AudioSink, on_item: Any = None) -> dict[str, Any]:
    """Write the context's audio until `done`; return its metrics. Errors end the command."""
    async for item in ctx:
        if isinstance(item, AudioChunk):
            sink.write(item.data)
        elif isinstance(item, Event) and item.type == "error":
            raise ServerError(item.data)
        if on_item is not None:
            on_item(item)
        if isinstance(item, Event) and item.type == "done":
            metrics: dict[str, Any] = item.data["metrics"]
            return metrics
    raise CommandError("the server ended the context without `done`")


async def _send_while_draining(
    sending: Coroutine[Any, Any, None], ctx: Context, sink: AudioSink, on_item: Any
) -> dict[str, Any]:
    """Send text (``sending``) while the audio comes back; the sender never outlives this."""
    sender = asyncio.create_task(sending)
    try:
        metrics = await _drain(ctx, sink, on_item)
        await sender
        return metrics
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender


def _describe(args: argparse.Namespace, sink: AudioSink, metrics: dict[str, Any]) -> str:
    where = f" to {args.output}" if args.output else ""
    return (
        f"{metrics['audio_ms'] / 1000:.2f} s of audio ({sink.encoding}, {sink.rate_hz} Hz){where}; "
        f"first audio after {metrics['ttfa_ms']:.0f} ms; real-time factor {metrics['rtf']}"
    )


# --- commands ----------------------------------------------------------------------------


async def say(args: argparse.Namespace) -> int:
    async with _session(args) as (_, ctx, sink):
        await ctx.send(args.text)
        await ctx.end()
        metrics = await _drain(ctx, sink)
    print(_describe(args, sink, metrics), file=sys.stderr)
    return 0


async def _read_pieces(handle: IO[str]) -> AsyncIterator[str]:
    """The text in pieces, read in a thread: a slow pipe must not stall the audio."""
    while piece := await asyncio.to_thread(handle.read, READ_CHARS):
        yield piece


async def stream(args: argparse.Namespace) -> int:
    async with _session(args) as (_, ctx, sink):
        sent = 0
        spoken = 0  # end offset of the last segment whose audio has started
        audio_ms = 0.0
        started = time.perf_counter()
        room = asyncio.Event()
        room.set()

        def progress(item: AudioChunk | Event) -> None:
            nonlocal spoken, audio_ms
            if isinstance(item, Event) and item.type == "segment":
                spoken = int(item.data["end"])
                if sent - spoken < AHEAD_CHARS:
                    room.set()
            if isinstance(item, AudioChunk):
                audio_ms += _chunk_ms(item, sink)
            if not args.quiet:
                elapsed = time.perf_counter() - started
                rtf = elapsed / (audio_ms / 1000) if audio_ms else 0.0
                print(
                    f"\rsent {sent} chars, spoken to {spoken}, {audio_ms / 1000:7.1f} s audio, "
                    f"wall/audio {rtf:.2f}",
                    end="",
                    file=sys.stderr,
                )

        async def send_all() -> None:
            nonlocal sent
            async for piece in _read_pieces(args.text_source):
                while sent - spoken >= AHEAD_CHARS:  # keep memory flat on both ends
                    room.clear()
                    await room.wait()
                await ctx.send(piece)
                sent += len(piece)
            await ctx.end()

        metrics = await _send_while_draining(send_all(), ctx, sink, progress)
    if not args.quiet:
        print(file=sys.stderr)
    print(_describe(args, sink, metrics), file=sys.stderr)
    return 0


def _chunk_ms(chunk: AudioChunk, sink: AudioSink) -> float:
    spec = FORMATS.get(sink.encoding)
    width = spec.bytes_per_sample if spec is not None else None
    if width is None:
        return 0.0  # compressed: counted from `done`
    return 1000.0 * len(chunk.data) / width / sink.rate_hz


async def type_(args: argparse.Namespace) -> int:
    if args.text is None:
        raise CommandError("give the text to type, or --file FILE")
    text: str = args.text
    if args.output is None and not args.play:
        args.format = args.format or "pcm_s16le"  # measure only: audio is discarded
    if args.tps:
        words = text.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        gap_s = 1.0 / args.tps
        label = f"LLM at {args.tps:g} tokens/s"
    else:
        pieces = list(text)
        gap_s = 1.0 / args.cps
        label = f"typist at {args.cps:g} characters/s"
    print(f"{label}: {len(text)} characters", file=sys.stderr)
    async with _session(args) as (_, ctx, sink):
        sent_at: list[tuple[int, float]] = []
        first_audio: float | None = None

        async def type_all() -> None:
            offset = 0
            next_at = time.perf_counter()
            for piece in pieces:
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                offset += len(piece)
                sent_at.append((offset, time.perf_counter()))
                await ctx.send(piece)
                next_at += gap_s
            await ctx.end()

        def report(item: AudioChunk | Event) -> None:
            nonlocal first_audio
            now = time.perf_counter()
            t0 = sent_at[0][1] if sent_at else now
            if isinstance(item, AudioChunk) and first_audio is None:
                first_audio = now
                print(f"[{1000 * (now - t0):7.0f} ms] first audio", file=sys.stderr)
            if isinstance(item, Event) and item.type == "segment":
                trigger = next((t for end, t in sent_at if end >= item.data["end"]), now)
                print(
                    f"[{1000 * (now - t0):7.0f} ms] segment {item.data['seq']}: {item.data['text']!r} "
                    f"({1000 * (now - trigger):.0f} ms after its last character)",
                    file=sys.stderr,
                )

        metrics = await _send_while_draining(type_all(), ctx, sink, report)
    print(
        f"time to first audio: {metrics['ttfa_ms']:.0f} ms (server-side), "
        + _describe(args, sink, metrics),
        file=sys.stderr,
    )
    return 0


async def voices(args: argparse.Namespace) -> int:
    async with connect(args.url) as conn:
        caps = conn.ready["capabilities"]
        print(f"engine: {caps['engine']}")
        default = conn.ready["settings"]["voice"]
        for voice in caps["voices"]:
            mark = " (default)" if voice["name"] == default else ""
            print(f"  {voice['name']}  {voice['language']}  {voice['sample_rate_hz']} Hz{mark}")
        print("formats:")
        for name, spec in caps["encodings"].items():
            rates = ", ".join(str(r) for r in spec["sample_rates_hz"])
            print(f"  {name:<13} {rates} Hz (default {spec['default_sample_rate_hz']})")
    return 0


COMMANDS = {"say": say, "stream": stream, "type": type_, "voices": voices}


def run_client_command(args: argparse.Namespace) -> int:
    try:
        if args.command == "stream":
            if args.source == "-":
                args.text_source = sys.stdin
            elif Path(args.source).is_file():
                args.text_source = open(args.source, encoding="utf-8")  # noqa: SIM115
            else:
                raise CommandError(f"no such file: {args.source}")
        if args.command == "type" and args.text is None and args.file is not None:
            if not args.file.is_file():
                raise CommandError(f"no such file: {args.file}")
            args.text = args.file.read_text(encoding="utf-8")
        return asyncio.run(COMMANDS[args.command](args))
    except (CommandError, ConnectError) as exc:
        print(f"speakstream {args.command}: {exc}", file=sys.stderr)
        return 1
    except ServerError as exc:
        print(
            f"speakstream {args.command}: the server said {exc.code}: {exc.message}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        source = getattr(args, "text_source", None)
        if source is not None and source is not sys.stdin:
            source.close()
