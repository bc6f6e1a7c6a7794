"""Client messages of the native protocol: parsing and validation, no I/O.

``parse_client_message`` turns one JSON text frame into a typed record or raises
``ProtocolError`` with a stable code; nothing else about the connection changes.
Server messages are plain dicts built by the session (``server_message``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from speakstream.protocol.errors import ErrorCode, ProtocolError

DEFAULT_CONTEXT = "default"
MAX_CONTEXT_ID_CHARS = 64


@dataclass(frozen=True, slots=True)
class StartMessage:
    context: str
    voice: str | None = None
    encoding: str | None = None
    sample_rate_hz: int | None = None
    speed: float | None = None
    volume: float | None = None
    min_text_length: int | None = None
    chunk_size: int | None = None
    streaming_threshold_ms: int | None = None
    preemptive_generation: bool | None = None
    alignment: bool | None = None


@dataclass(frozen=True, slots=True)
class TextMessage:
    context: str
    text: str


@dataclass(frozen=True, slots=True)
class FlushMessage:
    context: str


@dataclass(frozen=True, slots=True)
class CancelMessage:
    context: str
    played_ms: float | None = None


@dataclass(frozen=True, slots=True)
class EndMessage:
    context: str


@dataclass(frozen=True, slots=True)
class PingMessage:
    id: str | int | None = None


ClientMessage = StartMessage | TextMessage | FlushMessage | CancelMessage | EndMessage | PingMessage

_COMMON_FIELDS = frozenset({"type", "context"})
_FIELDS: dict[str, frozenset[str]] = {
    "start": _COMMON_FIELDS
    | {
        "voice",
        "encoding",
        "sample_rate_hz",
        "speed",
        "volume",
        "min_text_length",
        "chunk_size",
        "streaming_threshold_ms",
        "preemptive_generation",
        "alignment",
    },
    "text": _COMMON_FIELDS | {"text"},
    "flush": _COMMON_FIELDS,
    "cancel": _COMMON_FIELDS | {"played_ms"},
    "end": _COMMON_FIELDS,
    "ping": frozenset({"type", "id"}),
}
CLIENT_MESSAGE_TYPES = tuple(_FIELDS)


def _invalid(message: str, context: str | None = None) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_MESSAGE, message, context)


def _context(obj: dict[str, Any]) -> str:
    value = obj.get("context", DEFAULT_CONTEXT)
    if not isinstance(value, str) or not value:
        raise _invalid("'context' must be a non-empty string")
    if len(value) > MAX_CONTEXT_ID_CHARS:
        raise _invalid(f"'context' is longer than {MAX_CONTEXT_ID_CHARS} characters")
    return value


def _optional_int(obj: dict[str, Any], key: str, context: str, low: int, high: int) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"'{key}' must be an integer", context)
    if not low <= value <= high:
        raise _invalid(f"'{key}' must be between {low} and {high}", context)
    return value


def _optional_float(
    obj: dict[str, Any], key: str, context: str, low: float, high: float
) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"'{key}' must be a number", context)
    if not low <= value <= high:
        raise _invalid(f"'{key}' must be between {low} and {high}", context)
    return float(value)


def _optional_str(obj: dict[str, Any], key: str, context: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _invalid(f"'{key}' must be a non-empty string", context)
    return value


def _optional_bool(obj: dict[str, Any], key: str, context: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _invalid(f"'{key}' must be true or false", context)
    return value


def parse_client_message(raw: str) -> ClientMessage:
    """Parse one JSON text frame. Raises ``ProtocolError`` on anything malformed."""
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(ErrorCode.INVALID_JSON, f"message is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise _invalid("message must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise _invalid("message needs a string field 'type'")
    allowed = _FIELDS.get(kind)
    if allowed is None:
        known = ", ".join(CLIENT_MESSAGE_TYPES)
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind!r}; known: {known}"
        )
    if kind == "ping":
        ping_id = obj.get("id")
        if ping_id is not None and (
            isinstance(ping_id, bool) or not isinstance(ping_id, str | int)
        ):
            raise _invalid("'id' must be a string or an integer")
        return PingMessage(ping_id)
    context = _context(obj)
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise _invalid(f"unknown field(s) for {kind!r}: {', '.join(unknown)}", context)
    if kind == "text":
        text = obj.get("text")
        if not isinstance(text, str):
            raise _invalid("'text' must be a string", context)
        return TextMessage(context, text)
    if kind == "flush":
        return FlushMessage(context)
    if kind == "end":
        return EndMessage(context)
    if kind == "cancel":
        played = _optional_float(obj, "played_ms", context, 0.0, 1e9)
        return CancelMessage(context, played)
    return StartMessage(
        context=context,
        voice=_optional_str(obj, "voice", context),
        encoding=_optional_str(obj, "encoding", context),
        sample_rate_hz=_optional_int(obj, "sample_rate_hz", context, 1, 384_000),
        speed=_optional_float(obj, "speed", context, 0.25, 4.0),
        volume=_optional_float(obj, "volume", context, 0.0, 4.0),
        min_text_length=_optional_int(obj, "min_text_length", context, 1, 1000),
        chunk_size=_optional_int(obj, "chunk_size", context, 1, 5000),
        streaming_threshold_ms=_optional_int(obj, "streaming_threshold_ms", context, 1, 60_000),
        preemptive_generation=_optional_bool(obj, "preemptive_generation", context),
        alignment=_optional_bool(obj, "alignment", context),
    )


def server_message(kind: str, **fields: Any) -> dict[str, Any]:
    """A server message as a dict, ``type`` first."""
    return {"type": kind, **fields}


def error_message(error: ProtocolError) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "code": str(error.code),
        "message": error.message,
        "retryable": error.retryable,
    }
    if error.context is not None:
        fields["context"] = error.context
    return server_message("error", **fields)
