"""Server messages of the native protocol: one record per wire message, one JSON encoder.

Each record knows its ``type`` and turns itself into a dict (``to_dict``, ``type`` first,
``None`` fields left out) and into a JSON text frame (``to_json``). ``encode_json`` is
the only JSON encoder of the server: UTF-8 text, compact, and safe for any Python string
(a lone surrogate, which UTF-8 cannot carry, is written as a ``\\uXXXX`` escape instead
of killing the send).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from speakstream.protocol.errors import ClientVisibleError


def encode_json(obj: dict[str, Any]) -> str:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: escape everything non-ASCII instead
        text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
    return text


class ServerMessage:
    """Base of the records below (all frozen dataclasses)."""

    __slots__ = ()
    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.metadata.get("flatten"):
                body.update(value)
            else:
                body[f.metadata.get("wire", f.name)] = value
        return body

    def to_json(self) -> str:
        return encode_json(self.to_dict())


@dataclass(frozen=True, slots=True)
class Ready(ServerMessage):
    type: ClassVar[str] = "ready"
    protocol: int
    settings: dict[str, Any]
    limits: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict, metadata={"flatten": True})


@dataclass(frozen=True, slots=True)
class Pong(ServerMessage):
    type: ClassVar[str] = "pong"
    id: str | int | None = None


@dataclass(frozen=True, slots=True)
class ErrorMessage(ServerMessage):
    type: ClassVar[str] = "error"
    code: str
    message: str
    retryable: bool
    context: str | None = None
    segment: int | None = None
    retry_after_ms: int | None = None

    @classmethod
    def of(cls, error: ClientVisibleError, segment: int | None = None) -> ErrorMessage:
        retry_ms = None if error.retry_after_s is None else round(1000 * error.retry_after_s)
        return cls(
            str(error.code), error.message, error.retryable, error.context, segment, retry_ms
        )


@dataclass(frozen=True, slots=True)
class SegmentEvent(ServerMessage):
    type: ClassVar[str] = "segment"
    context: str
    stream: int
    seq: int
    text: str
    start: int
    end: int
    queue_ms: float | None = None
    first_chunk_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Alignment(ServerMessage):
    type: ClassVar[str] = "alignment"
    context: str
    seq: int
    words: list[dict[str, Any]]
    chars: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Flushed(ServerMessage):
    type: ClassVar[str] = "flushed"
    context: str


@dataclass(frozen=True, slots=True)
class Cancelled(ServerMessage):
    type: ClassVar[str] = "cancelled"
    context: str
    split: dict[str, Any] = field(default_factory=dict, metadata={"flatten": True})
    # ``done``'s metrics as they stood at the cancel, for a context that had not finished
    # (one that had has sent its ``done``)
    metrics: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Done(ServerMessage):
    type: ClassVar[str] = "done"
    context: str
    metrics: dict[str, Any]
