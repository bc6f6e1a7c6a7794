"""Client commands: ``say``, ``stream``, ``type``, ``voices`` (also ``python -m speakstream``).

Each talks to a running server over the native protocol with the Python client, and
writes the audio it receives straight to a file (or an audio player) as it arrives, so
memory stays flat whatever the length of the text. Every failure the user can act on
(no server, a wrong URL or file, a text that is empty or not UTF-8, a format that the
file name contradicts) is one line on stderr and exit status 1; a file is put in place
only when its audio is complete (never after an error, Ctrl-C or SIGTERM). The server's
``done`` metrics may be null (an utterance with no audio): they print as "n/a".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from speakstream.client import (
    AudioChunk,
    ConnectError,
    ConnectionClosed,
    Context,
    Event,
    ServerError,
    connect,
    default_url,
)
from speakstream.client.duration import AudioClock
from speakstream.client.files import AudioFile, FileFormatError, encoding_for_path
from speakstream.client.pacing import SentAt, send_paced, sent_by, tokens, typed
from speakstream.client.text import TextError, TextSource, read_text_file, require_text
from speakstream.protocol.errors import SpeakstreamError

AHEAD_CHARS = 4000  # how far `stream` lets the text run ahead of the audio
EXIT_SIGTERM = 128 + signal.SIGTERM
EXIT_SIGINT = 128 + signal.SIGINT


class CommandError(SpeakstreamError):
    """A failure the user can act on; printed without a traceback."""


def add_client_commands(commands: Any) -> None:
    def common(parser: argparse.ArgumentParser, *, output: bool = True) -> None:
        parser.add_argument(
            "--url",
            default=default_url(),
            help="server WebSocket URL, ws:// or wss:// (default: SPEAKSTREAM_URL, else "
            "%(default)s)",
        )
        parser.add_argument(
            "--api-key",
            default=os.environ.get("SPEAKSTREAM_API_KEY") or None,
            help="API key or token for a server that needs one (default: SPEAKSTREAM_API_KEY)",
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
    stream.add_argument("source", help="UTF-8 text file, or - for standard input")
    stream.add_argument("--quiet", action="store_true", help="no progress line")
    common(stream)

    typ = commands.add_parser("type", help="simulate a typist or an LLM and report latency")
    typ.add_argument("text", nargs="?", help="text to type (default: --file)")
    typ.add_argument("--file", type=Path, help="read the text from a UTF-8 file")
    pace = typ.add_mutually_exclusive_group()
    pace.add_argument("--cps", type=float, default=12.0, help="typist: characters per second (12)")
    pace.add_argument("--tps", type=float, help="LLM: tokens (words) per second instead")
    common(typ)

    voices = commands.add_parser("voices", help="list the server's voices and formats")
    common(voices, output=False)


# --- audio out -------------------------------------------------------------------------------


class AudioSink:
    """Where received audio goes: an ``AudioFile`` and/or a player; counts the audio."""

    def __init__(self, output: Path | None, encoding: str, rate_hz: int, play: bool) -> None:
        self.encoding = encoding
        self.rate_hz = rate_hz
        self.clock = AudioClock(encoding, rate_hz)
        self.bytes_written = 0
        self._player: subprocess.Popen[bytes] | None = None
        if play:
            self._player = subprocess.Popen(
                _player_command(encoding, rate_hz), stdin=subprocess.PIPE
            )
        self._file = AudioFile(output, encoding) if output is not None else None

    def write(self, data: bytes) -> None:
        self.bytes_written += len(data)
        self.clock.add(data)
        if self._file is not None:
            self._file.write(data)
        if self._player is not None and self._player.stdin is not None:
            self._player.stdin.write(data)

    def close(self, *, complete: bool) -> None:
        if self._file is not None:
            self._file.close(complete=complete)
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


class ProgressLine:
    """One status line on stderr, rewritten in place; ``close`` ends it with a newline."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._open = False

    def show(self, text: str) -> None:
        if self.enabled:
            print(f"\r{text}", end="", file=sys.stderr, flush=True)
            self._open = True

    def close(self) -> None:
        if self._open:
            print(file=sys.stderr, flush=True)
            self._open = False


# --- one utterance ---------------------------------------------------------------------------


def _choose_format(args: argparse.Namespace) -> str:
    if args.output is not None:
        try:
            return encoding_for_path(args.output, args.format)
        except FileFormatError as exc:
            raise CommandError(str(exc)) from None
    if args.format:
        return str(args.format)
    if args.play:
        return "pcm_s16le"
    raise CommandError(
        "say where the audio goes: -o FILE (e.g. out.wav, out.ogg, out.mp3) or --play"
    )


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
async def _session(args: argparse.Namespace) -> AsyncIterator[tuple[Context, AudioSink]]:
    """A context and where its audio goes; the file is kept only if the block completes."""
    encoding = _choose_format(args)
    async with connect(args.url, api_key=args.api_key) as conn:
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
            yield ctx, sink
            complete = True
        finally:
            sink.close(complete=complete)


OnItem = Callable[[AudioChunk | Event], None]


async def _drain(ctx: Context, sink: AudioSink, on_item: OnItem | None = None) -> dict[str, Any]:
    """Write the context's audio until ``done``; return its metrics. A server error, a
    cancelled context or an utterance without audio ends the command (and its file)."""

    def each(item: AudioChunk | Event) -> None:
        if isinstance(item, AudioChunk):
            sink.write(item.data)
        if on_item is not None:
            on_item(item)

    try:
        end = await ctx.drain(each)
    except ConnectionClosed as exc:
        raise CommandError(f"the server closed the connection ({exc.code}): {exc.reason}") from None
    if end.type != "done":
        raise CommandError(f"the server ended the context with `{end.type}`, not `done`")
    metrics: dict[str, Any] = end.data.get("metrics") or {}
    if sink.bytes_written == 0 or not metrics.get("audio_ms"):
        raise CommandError("the server sent no audio for this text (nothing to speak in it?)")
    return metrics


async def _send_while_draining(
    sending: Coroutine[Any, Any, None], ctx: Context, sink: AudioSink, on_item: OnItem
) -> dict[str, Any]:
    """Send text (``sending``) while the audio comes back; whichever fails first ends both."""
    sender = asyncio.create_task(sending)
    drainer = asyncio.create_task(_drain(ctx, sink, on_item))
    try:
        await asyncio.wait((sender, drainer), return_when=asyncio.FIRST_EXCEPTION)
        if sender.done() and sender.exception() is not None:
            await sender  # raises what stopped the text (an unreadable file, the socket)
        metrics = await drainer
        await sender
        return metrics
    finally:
        for task in (sender, drainer):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _ms(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.0f} ms"


def describe(metrics: dict[str, Any], sink: AudioSink, output: Path | None) -> str:
    """The closing line of a command, from ``done``'s metrics (any of which may be null)."""
    where = f" to {output}" if output else ""
    audio_s = float(metrics.get("audio_ms") or 0.0) / 1000
    rtf = metrics.get("rtf")
    return (
        f"{audio_s:.2f} s of audio ({sink.encoding}, {sink.rate_hz} Hz){where}; "
        f"first audio after {_ms(metrics.get('ttfa_ms'))}; "
        f"real-time factor {'n/a' if rtf is None else rtf}"
    )


# --- commands --------------------------------------------------------------------------------


async def say(args: argparse.Namespace) -> int:
    text = require_text(args.text)
    async with _session(args) as (ctx, sink):
        await ctx.send(text)
        await ctx.end()
        metrics = await _drain(ctx, sink)
    print(describe(metrics, sink, args.output), file=sys.stderr)
    return 0


async def stream(args: argparse.Namespace) -> int:
    source: TextSource = args.text_source
    opening = await source.opening()  # an empty or unreadable start fails before any file
    progress = ProgressLine(enabled=not args.quiet)
    try:
        async with _session(args) as (ctx, sink):
            sent = 0
            spoken = 0  # end offset of the last segment whose audio has started
            started = time.perf_counter()
            room = asyncio.Event()
            room.set()

            def show(item: AudioChunk | Event) -> None:
                nonlocal spoken
                if isinstance(item, Event) and item.type == "segment":
                    spoken = int(item.data["end"])
                    if sent - spoken < AHEAD_CHARS:
                        room.set()
                audio_s = sink.clock.audio_ms / 1000
                rtf = (time.perf_counter() - started) / audio_s if audio_s else 0.0
                progress.show(
                    f"sent {sent} chars, spoken to {spoken}, {audio_s:7.1f} s audio, "
                    f"wall/audio {rtf:.2f}"
                )

            async def send_all() -> None:
                nonlocal sent
                pending = list(opening)
                while piece := (pending.pop(0) if pending else await source.read()):
                    while sent - spoken >= AHEAD_CHARS:  # keep memory flat on both ends
                        room.clear()
                        await room.wait()
                    await ctx.send(piece)
                    sent += len(piece)
                await ctx.end()

            metrics = await _send_while_draining(send_all(), ctx, sink, show)
    finally:
        progress.close()
    print(describe(metrics, sink, args.output), file=sys.stderr)
    return 0


async def type_(args: argparse.Namespace) -> int:
    if args.text is None:
        raise CommandError("give the text to type, or --file FILE")
    text = require_text(args.text)
    if args.output is None and not args.play:
        args.format = args.format or "pcm_s16le"  # measure only: audio is discarded
    if args.tps:
        pieces = tokens(text, args.tps)
        label = f"LLM at {args.tps:g} tokens/s"
    else:
        pieces = typed(text, args.cps)
        label = f"typist at {args.cps:g} characters/s"
    print(f"{label}: {len(text)} characters", file=sys.stderr)
    async with _session(args) as (ctx, sink):
        sent_at: SentAt = []
        first_audio: float | None = None

        def report(item: AudioChunk | Event) -> None:
            nonlocal first_audio
            now = time.perf_counter()
            t0 = sent_at[0][1] if sent_at else now
            if isinstance(item, AudioChunk) and first_audio is None:
                first_audio = now
                print(f"[{1000 * (now - t0):7.0f} ms] first audio", file=sys.stderr)
            if isinstance(item, Event) and item.type == "segment":
                trigger = sent_by(sent_at, int(item.data["end"])) or now
                print(
                    f"[{1000 * (now - t0):7.0f} ms] segment {item.data['seq']}: {item.data['text']!r} "
                    f"({1000 * (now - trigger):.0f} ms after its last character)",
                    file=sys.stderr,
                )

        metrics = await _send_while_draining(send_paced(ctx, pieces, sent_at), ctx, sink, report)
    print(
        f"time to first audio: {_ms(metrics.get('ttfa_ms'))} (server-side), "
        + describe(metrics, sink, args.output),
        file=sys.stderr,
    )
    return 0


async def voices(args: argparse.Namespace) -> int:
    async with connect(args.url, api_key=args.api_key) as conn:
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


async def _run(args: argparse.Namespace) -> int:
    """The command, stopped cleanly by SIGTERM (the `finally` blocks remove partial files)."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    terminated = False

    def terminate() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals here (Windows)
        loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        return await COMMANDS[args.command](args)
    except asyncio.CancelledError:
        if not terminated:
            raise
        print(f"speakstream {args.command}: terminated", file=sys.stderr)
        return EXIT_SIGTERM


def run_client_command(args: argparse.Namespace) -> int:
    try:
        if args.command == "stream":
            args.text_source = TextSource(args.source)
        if args.command == "type" and args.text is None and args.file is not None:
            args.text = read_text_file(args.file)
        return asyncio.run(_run(args))
    except (CommandError, TextError, ConnectError) as exc:
        print(f"speakstream {args.command}: {exc}", file=sys.stderr)
        return 1
    except ServerError as exc:
        print(
            f"speakstream {args.command}: the server said {exc.code}: {exc.message}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"speakstream {args.command}: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    finally:
        source = getattr(args, "text_source", None)
        if source is not None:
            source.close()
