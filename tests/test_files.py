"""Which encoding a file name asks for, and the file writer (sans server)."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import pytest

from speakstream.audio.encoders import FORMATS, encoding_for_suffix, wav_header
from speakstream.client.files import AudioFile, FileFormatError, encoding_for_path


def test_every_suffix_names_one_encoding() -> None:
    seen: dict[str, str] = {}
    for spec in FORMATS.values():
        for suffix in spec.suffixes:
            assert suffix.startswith(".") and suffix == suffix.lower()
            assert seen.setdefault(suffix, spec.encoding) == spec.encoding
            assert encoding_for_suffix(suffix.upper()) == spec.encoding
    assert encoding_for_suffix(".vorbis") is None


def test_the_suffix_decides_unless_a_format_contradicts_it() -> None:
    assert encoding_for_path(Path("a.OGG"), None) == "opus"
    assert encoding_for_path(Path("a.ogg"), "opus") == "opus"
    assert encoding_for_path(Path("a.bin"), "opus") == "opus"  # an unknown suffix says nothing
    assert encoding_for_path(Path("a.bin"), None, default="wav") == "wav"
    with pytest.raises(FileFormatError, match=r"'x.mp3' names mp3 .* opus"):
        encoding_for_path(Path("x.mp3"), "opus")
    with pytest.raises(FileFormatError, match="cannot tell the format"):
        encoding_for_path(Path("x.vorbis"), None)


def test_a_complete_wav_file_has_its_sizes(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    with AudioFile(path, "wav") as out:
        out.write(wav_header(16000))
        out.write(struct.pack("<h", 1000) * 16000)
    with wave.open(str(path)) as wav:
        assert wav.getnframes() == 16000


def test_an_incomplete_file_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "a.ulaw"
    with pytest.raises(RuntimeError), AudioFile(path, "mulaw") as out:
        out.write(b"\x7f" * 100)
        assert (tmp_path / "a.ulaw.part").exists()
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []
