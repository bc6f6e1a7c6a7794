"""Where uploaded reference recordings live, shared by the upload endpoint and the engine.

Stdlib only. An upload is stored as ``<dir>/<id>.wav`` under an id that the server
chooses (16 lowercase hex digits); a client names it as the voice ``upload:<id>``.
``upload_path`` accepts only an id of that exact shape, so no client text ever becomes
a path.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

UPLOAD_VOICE_PREFIX = "upload:"
_ID = re.compile(r"[0-9a-f]{16}")


def new_upload_id() -> str:
    return secrets.token_hex(8)


def voice_name(upload_id: str) -> str:
    return UPLOAD_VOICE_PREFIX + upload_id


def upload_id_of(voice: str) -> str | None:
    """The id in ``upload:<id>``; None for any other voice name or a malformed id."""
    if not voice.startswith(UPLOAD_VOICE_PREFIX):
        return None
    upload_id = voice[len(UPLOAD_VOICE_PREFIX) :]
    return upload_id if _ID.fullmatch(upload_id) else None


def upload_path(directory: Path, upload_id: str) -> Path:
    if not _ID.fullmatch(upload_id):
        raise ValueError(f"not an upload id: {upload_id!r}")
    return directory / f"{upload_id}.wav"


def stored_upload_ids(directory: Path) -> list[str]:
    """Ids of the uploads in ``directory`` (none if it does not exist)."""
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.wav") if _ID.fullmatch(p.stem))
