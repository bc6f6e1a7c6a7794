"""Audio files as the client writes them: the format a file name asks for, and the writer.

``encoding_for_path(path, encoding, default)`` is the encoding to request for a file: the
one its suffix names (``FormatSpec.suffixes``), or ``encoding`` when given. It raises
``FileFormatError`` when the two contradict (``--format opus -o x.mp3``) or when neither
says (an unknown suffix and no ``default``).

``AudioFile(path, encoding)`` writes beside the target (``NAME.part``) as the audio
arrives; ``close(complete=True)`` renames it into place, ``close(complete=False)``
deletes it, so a failed or interrupted run never leaves a half-written file nor clobbers
a good one. A WAV stream's header says "unknown length" (0xFFFFFFFF); a finished WAV
file gets its real sizes.
"""

from __future__ import annotations

import struct
from pathlib import Path
from types import TracebackType
from typing import IO

from speakstream.audio.encoders import FORMATS, encoding_for_suffix
from speakstream.protocol.errors import SpeakstreamError

WAV_HEADER_BYTES = 44  # the streamed header (speakstream.audio.encoders.wav_header)


class FileFormatError(SpeakstreamError, ValueError):
    """The file name and the requested encoding do not agree, or say nothing."""


def known_suffixes() -> list[str]:
    return sorted(suffix for spec in FORMATS.values() for suffix in spec.suffixes)


def encoding_for_path(path: Path, encoding: str | None, default: str | None = None) -> str:
    suffix = path.suffix.lower()
    named = encoding_for_suffix(suffix)
    if encoding is None:
        if named is not None:
            return named
        if default is not None:
            return default
        raise FileFormatError(
            f"cannot tell the format from {path.name!r}; use --format or a suffix: "
            + ", ".join(known_suffixes())
        )
    if named is not None and named != encoding:
        spec = FORMATS.get(encoding)
        fits = ", ".join(spec.suffixes) if spec is not None and spec.suffixes else "no suffix"
        raise FileFormatError(
            f"{path.name!r} names {named} but the format asked for is {encoding} "
            f"(which goes in {fits}); change the suffix or leave out the format"
        )
    return encoding


class AudioFile:
    """A file written as the audio arrives, put in place only when complete."""

    def __init__(self, path: Path, encoding: str) -> None:
        self.path = path
        self.encoding = encoding
        self.bytes_written = 0
        self._partial = path.with_name(path.name + ".part")
        self._file: IO[bytes] | None = self._partial.open("wb")

    def write(self, data: bytes) -> None:
        assert self._file is not None, "write after close"
        self._file.write(data)
        self.bytes_written += len(data)

    def close(self, *, complete: bool) -> None:
        if self._file is None:
            return
        if complete and self.encoding == "wav" and self.bytes_written >= WAV_HEADER_BYTES:
            self._file.seek(4)
            self._file.write(struct.pack("<I", self.bytes_written - 8))
            self._file.seek(WAV_HEADER_BYTES - 4)
            self._file.write(struct.pack("<I", self.bytes_written - WAV_HEADER_BYTES))
        self._file.close()
        self._file = None
        if complete:
            self._partial.replace(self.path)
        else:
            self._partial.unlink(missing_ok=True)

    def __enter__(self) -> AudioFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(complete=exc_type is None)
