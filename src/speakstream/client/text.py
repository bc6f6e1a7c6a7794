"""Text for the client commands, read strictly: UTF-8, not binary, not empty.

``read_text_file(path)`` reads a whole file (``type --file``); ``TextSource(source)``
reads a file or standard input (``"-"``) in pieces in a worker thread (``stream``), and
``opening()`` reads ahead to the first piece that is not blank. ``require_text(text)``
checks a text given on the command line. Every problem (no such file, a directory, bytes
that are not UTF-8, a NUL byte, nothing but blanks) is a ``TextError`` whose message
names the file and what is wrong with it.
"""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path
from typing import IO

from speakstream.protocol.errors import SpeakstreamError

READ_CHARS = 512  # how much text a TextSource reads at a time


class TextError(SpeakstreamError):
    """The text cannot be spoken as given; the message says why."""


def _not_utf8(name: str, exc: UnicodeDecodeError, chars_before: int) -> TextError:
    byte = exc.object[exc.start] if exc.start < len(exc.object) else None
    what = f"byte 0x{byte:02x}" if byte is not None else "its end"
    return TextError(
        f"{name} is not UTF-8 text ({what} after {chars_before} characters: {exc.reason}); "
        "convert it first, e.g. iconv -f latin1 -t utf-8"
    )


def _check_text(name: str, text: str, chars_before: int = 0) -> str:
    if "\x00" in text:
        raise TextError(
            f"{name} looks like a binary file (a NUL byte after "
            f"{chars_before + text.index(chr(0))} characters), not text"
        )
    return text


def _text_file(path: Path) -> Path:
    if path.is_dir():
        raise TextError(f"{path} is a directory, not a text file")
    if not path.exists():
        raise TextError(f"no such file: {path}")
    return path


def read_text_file(path: Path) -> str:
    """A whole UTF-8 text file (``type --file``), or a ``TextError`` saying what is wrong."""
    try:
        return _check_text(str(path), _text_file(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise _not_utf8(str(path), exc, len(exc.object[: exc.start].decode("utf-8"))) from None


class TextSource:
    """A UTF-8 text read in pieces in a worker thread (a slow pipe never stalls the audio)."""

    def __init__(self, source: str) -> None:
        if source == "-":
            self.name = "standard input"
            stdin = getattr(sys.stdin, "buffer", None)
            self._handle: IO[str] = (
                io.TextIOWrapper(stdin, encoding="utf-8") if stdin is not None else sys.stdin
            )
            self._owned = False
        else:
            self.name = source
            self._handle = _text_file(Path(source)).open(encoding="utf-8")
            self._owned = True
        self.chars_read = 0

    async def read(self) -> str:
        """The next piece ("" at the end)."""
        try:
            piece = await asyncio.to_thread(self._handle.read, READ_CHARS)
        except UnicodeDecodeError as exc:
            raise _not_utf8(self.name, exc, self.chars_read) from None
        _check_text(self.name, piece, self.chars_read)
        self.chars_read += len(piece)
        return piece

    async def opening(self) -> list[str]:
        """The pieces up to the first that is not blank; ``TextError`` if all are."""
        pieces: list[str] = []
        while piece := await self.read():
            pieces.append(piece)
            if piece.strip():
                return pieces
        raise TextError(f"nothing to say: {self.name} is empty (or only blank)")

    def close(self) -> None:
        if self._owned:
            self._handle.close()


def require_text(text: str) -> str:
    if not text.strip():
        raise TextError("nothing to say: the text is empty (or only blank)")
    return _check_text("the text", text)
