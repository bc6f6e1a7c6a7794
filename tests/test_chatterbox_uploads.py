"""Where uploads live and how a recording is checked, without the chatterbox extra:
``engines.chatterbox.uploads`` (ids, paths) and ``server.voice_upload``'s decoding and
storing (PyAV and the stdlib). The HTTP endpoint itself: ``test_voice_upload.py``."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest

from speakstream.engines.chatterbox.uploads import (
    new_upload_id,
    stored_upload_ids,
    upload_id_of,
    upload_path,
    voice_name,
)
from speakstream.server.voice_upload import UploadRefused, decode_recording, store_recording


def wav_bytes(seconds: float, rate_hz: int = 16_000) -> bytes:
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    pcm = (0.3 * np.sin(2 * np.pi * 200 * t) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def test_ids_are_fresh_hex_and_round_trip_through_the_voice_name() -> None:
    ids = {new_upload_id() for _ in range(50)}
    assert len(ids) == 50
    for upload_id in ids:
        assert upload_id_of(voice_name(upload_id)) == upload_id


@pytest.mark.parametrize(
    "voice",
    ["default", "upload:", "upload:../../etc/passwd", "upload:0123456789ABCDEF", "upload:abc"],
)
def test_no_other_voice_name_is_an_upload(voice: str) -> None:
    assert upload_id_of(voice) is None


def test_only_an_id_becomes_a_path(tmp_path: Path) -> None:
    assert upload_path(tmp_path, "0123456789abcdef") == tmp_path / "0123456789abcdef.wav"
    for bad in ("../0123456789abcdef", "0123456789abcdef/..", "x" * 16):
        with pytest.raises(ValueError):
            upload_path(tmp_path, bad)


def test_stored_ids_are_the_well_named_wavs(tmp_path: Path) -> None:
    assert stored_upload_ids(tmp_path / "absent") == []
    for name in ("00112233445566ff.wav", "not-an-id.wav", "0011223344556677.txt"):
        (tmp_path / name).write_bytes(b"")
    assert stored_upload_ids(tmp_path) == ["00112233445566ff"]


def test_a_recording_decodes_to_mono_float_at_its_rate() -> None:
    samples, rate_hz = decode_recording(wav_bytes(2.0, 22_050), max_s=10.0)
    assert rate_hz == 22_050 and samples.dtype == np.float32
    assert abs(samples.size - 2 * 22_050) < 1024 and 0.2 < float(np.max(np.abs(samples))) < 0.4


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"RIFF0000WAVEjunk" * 50, "not a recording"),
        (wav_bytes(0.5), "under 1 s"),
        (wav_bytes(3.0), "over 2 s"),
    ],
)
def test_a_bad_recording_is_refused(raw: bytes, says: str) -> None:
    with pytest.raises(UploadRefused, match=says):
        decode_recording(raw, max_s=2.0)


def test_what_is_stored_is_a_16_bit_mono_wav(tmp_path: Path) -> None:
    samples = np.linspace(-1.5, 1.5, 16_000, dtype=np.float32)
    path = store_recording(tmp_path / "uploads", "0123456789abcdef", samples, 16_000)
    assert path == tmp_path / "uploads" / "0123456789abcdef.wav"
    with wave.open(str(path)) as stored:
        assert (stored.getnchannels(), stored.getsampwidth(), stored.getframerate()) == (
            1,
            2,
            16_000,
        )
        assert stored.getnframes() == 16_000
    assert list((tmp_path / "uploads").iterdir()) == [path]  # no .part left behind
