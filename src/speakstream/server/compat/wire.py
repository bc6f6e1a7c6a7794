"""Small pieces every vendor dialect needs: reading a JSON frame, base64, field checks.

``json_object`` returns the JSON object a text frame carries, or None when the frame is
not one (binary, not JSON, not an object): the dialect then hands the frame to the
session as it is, whose parser answers ``invalid_json`` / ``binary_not_supported`` and
counts the error toward ``max_errors``, so a vendor client's garbage is bounded like a
native one's. The field readers raise ``ProtocolError`` (``invalid_message``) naming the
field; vendors' unknown fields are ignored (their SDKs add fields over time).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

from speakstream.protocol.errors import ErrorCode, ProtocolError
from speakstream.protocol.messages import MAX_CONTEXT_ID_CHARS
from speakstream.protocol.server_messages import ErrorMessage, ServerMessage
from speakstream.server.dialect import BinaryFrame, Frame, Inbound


def json_object(frame: Mapping[str, Any]) -> dict[str, Any] | None:
    text = frame.get("text")
    if text is None:
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def to_session(frame: Mapping[str, Any]) -> Inbound:
    """A frame the dialect cannot read, for the session to refuse (and count)."""
    text = frame.get("text")
    if text is not None:
        return Inbound(messages=(text,))
    return Inbound(messages=(BinaryFrame(frame.get("bytes") or b""),))


def read_inbound(
    frame: Mapping[str, Any],
    read: Callable[[dict[str, Any]], Inbound],
    event: Callable[[ServerMessage], list[Frame]],
) -> Inbound:
    """A vendor's JSON frame read by ``read``; a frame that is not a JSON object goes to
    the session (which answers it); a vendor message the dialect refuses is answered at
    once, in the vendor's words (``event``)."""
    obj = json_object(frame)
    if obj is None:
        return to_session(frame)
    try:
        return read(obj)
    except ProtocolError as error:
        return Inbound(replies=event(ErrorMessage.of(error)))


def invalid(message: str, context: str | None = None) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_MESSAGE, message, context)


def optional_str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    raise invalid(f"'{name}' must be a string")


def optional_bool(obj: Mapping[str, Any], name: str) -> bool:
    value = obj.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    raise invalid(f"'{name}' must be true or false")


def optional_number(obj: Mapping[str, Any], name: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"'{name}' must be a number")
    return float(value)


def context_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise invalid(f"'{name}' must be a non-empty string")
    if len(value) > MAX_CONTEXT_ID_CHARS:
        raise invalid(f"'{name}' is longer than {MAX_CONTEXT_ID_CHARS} characters", value)
    return value


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
