"""Client messages of the native protocol: parsing and validation, no I/O.

``parse_client_message`` turns one JSON text frame into a typed record or raises
``ProtocolError`` with a stable code; nothing else about the connection changes. Fields
are checked strictly: unknown fields, ``null`` for a field, an empty ``text``, and
strings that are not valid Unicode (a lone surrogate escape such as ``"\\ud800"``) are
errors, so a client's mistake is named instead of half-working. ``start``'s options are
declared once in ``protocol.options``. Server messages are in ``server_messages``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from speakstream.protocol.errors import ErrorCode, ProtocolError
from speakstream.protocol.options import START_OPTIONS, Option, Value

DEFAULT_CONTEXT = "default"
MAX_CONTEXT_ID_CHARS = 64


@dataclass(frozen=True, slots=True)
class StartMessage:
    context: str
    options: Mapping[str, Value] = field(default_factory=dict)  # names from START_OPTIONS

    def text_option(self, name: str) -> str | None:
        value = self.options.get(name)
        return value if isinstance(value, str) else None

    def number_option(self, name: str) -> float | None:
        value = self.options.get(name)
        return None if value is None or isinstance(value, str) else float(value)


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
    "start": _COMMON_FIELDS | {option.name for option in START_OPTIONS},
    "text": _COMMON_FIELDS | {"text"},
    "flush": _COMMON_FIELDS,
    "cancel": _COMMON_FIELDS | {"played_ms"},
    "end": _COMMON_FIELDS,
    "ping": frozenset({"type", "id"}),
}
CLIENT_MESSAGE_TYPES = tuple(_FIELDS)
_MAX_ID_CHARS = 256
_PLAYED_MS = Option("played_ms", float, 0.0, 1e9)


def _invalid(message: str, context: str | None = None) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_MESSAGE, message, context)


def _is_unicode(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _string(value: Any, name: str, context: str | None) -> str:
    if not isinstance(value, str):
        raise _invalid(f"'{name}' must be a string", context)
    if not _is_unicode(value):
        raise _invalid(f"'{name}' is not valid Unicode (a lone surrogate escape)", context)
    return value


def _context(obj: dict[str, Any]) -> str:
    value = _string(obj.get("context", DEFAULT_CONTEXT), "context", None)
    if not value:
        raise _invalid("'context' must be a non-empty string")
    if len(value) > MAX_CONTEXT_ID_CHARS:
        raise _invalid(f"'context' is longer than {MAX_CONTEXT_ID_CHARS} characters")
    return value


def _option(option: Option, value: Any, context: str) -> Value:
    name = option.name
    if value is None:
        raise _invalid(f"'{name}' must not be null; leave it out for the default", context)
    if option.kind is bool:
        if not isinstance(value, bool):
            raise _invalid(f"'{name}' must be true or false", context)
        return value
    if option.kind is str:
        text = _string(value, name, context)
        if not text:
            raise _invalid(f"'{name}' must be a non-empty string", context)
        if option.choices is not None and text not in option.choices:
            raise _invalid(f"'{name}' must be one of {', '.join(option.choices)}", context)
        return text
    if option.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _invalid(f"'{name}' must be an integer", context)
        number: int | float = value
    else:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(f"'{name}' must be a number", context)
        number = float(value)
    low = option.low if option.low is not None else float("-inf")
    high = option.high if option.high is not None else float("inf")
    if not low <= number <= high:
        raise _invalid(f"'{name}' must be between {low:g} and {high:g}", context)
    return number


def _load(raw: str) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers longer than Python's digit limit
        reason = str(exc)[:200]
        raise ProtocolError(
            ErrorCode.INVALID_JSON, f"message is not valid JSON: {reason}"
        ) from None
    if not isinstance(obj, dict):
        raise _invalid("message must be a JSON object")
    return obj


def parse_client_message(raw: str) -> ClientMessage:
    """Parse one JSON text frame. Raises ``ProtocolError`` on anything malformed."""
    obj = _load(raw)
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise _invalid("message needs a string field 'type'")
    allowed = _FIELDS.get(kind)
    if allowed is None:
        known = ", ".join(CLIENT_MESSAGE_TYPES)
        shown = kind[:40] if _is_unicode(kind) else ascii(kind)[:40]
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE, f"unknown message type {shown!r}; known: {known}"
        )
    if kind == "ping":
        _refuse_unknown(obj, allowed, kind, None)
        return _ping(obj)
    context = _context(obj)
    _refuse_unknown(obj, allowed, kind, context)
    if kind == "text":
        text = _string(obj.get("text"), "text", context)
        if not text:
            raise _invalid("'text' must hold at least one character", context)
        return TextMessage(context, text)
    if kind == "flush":
        return FlushMessage(context)
    if kind == "end":
        return EndMessage(context)
    if kind == "cancel":
        played = _option(_PLAYED_MS, obj["played_ms"], context) if "played_ms" in obj else None
        return CancelMessage(context, None if played is None else float(played))
    options = {o.name: _option(o, obj[o.name], context) for o in START_OPTIONS if o.name in obj}
    return StartMessage(context, options)


def _refuse_unknown(
    obj: dict[str, Any], allowed: frozenset[str], kind: str, context: str | None
) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        names = ", ".join(ascii(name)[1:-1][:40] for name in unknown[:10])
        raise _invalid(f"unknown field(s) for {kind!r}: {names}", context)


def _ping(obj: dict[str, Any]) -> PingMessage:
    if "id" not in obj:
        return PingMessage()
    ping_id = obj["id"]
    if isinstance(ping_id, str):
        _string(ping_id, "id", None)
        if len(ping_id) > _MAX_ID_CHARS:
            raise _invalid(f"'id' is longer than {_MAX_ID_CHARS} characters")
        return PingMessage(ping_id)
    if isinstance(ping_id, bool) or not isinstance(ping_id, int):
        raise _invalid("'id' must be a string or an integer")
    if abs(ping_id) >= 2**63:
        raise _invalid("'id' must fit in 64 bits")
    return PingMessage(ping_id)
