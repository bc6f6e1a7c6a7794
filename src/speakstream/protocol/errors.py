"""Error codes and WebSocket close codes of the native protocol.

Every client-visible error has a stable code string (``ErrorCode``); every reason the
server closes a socket has exactly one close code (``CloseCode``).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """Stable codes carried by ``error`` messages. Never renamed, only added."""

    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_TYPE = "unknown_type"
    BINARY_NOT_SUPPORTED = "binary_not_supported"
    UNKNOWN_VOICE = "unknown_voice"
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    UNSUPPORTED_SAMPLE_RATE = "unsupported_sample_rate"
    ALIGNMENT_UNSUPPORTED = "alignment_unsupported"
    UNKNOWN_CONTEXT = "unknown_context"
    CONTEXT_EXISTS = "context_exists"
    CONTEXT_ENDED = "context_ended"
    TOO_MANY_CONTEXTS = "too_many_contexts"
    TEXT_TOO_LONG = "text_too_long"
    SYNTHESIS_TIMEOUT = "synthesis_timeout"
    SYNTHESIS_FAILED = "synthesis_failed"
    ENCODING_FAILED = "encoding_failed"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    TOO_MANY_ERRORS = "too_many_errors"
    SERVER_SHUTTING_DOWN = "server_shutting_down"
    INTERNAL_ERROR = "internal_error"


# Errors after which the same request may succeed if simply sent again later.
RETRYABLE_ERRORS = frozenset(
    {
        ErrorCode.SYNTHESIS_TIMEOUT,
        ErrorCode.TOO_MANY_CONNECTIONS,
        ErrorCode.SERVER_SHUTTING_DOWN,
        ErrorCode.INTERNAL_ERROR,
    }
)


class CloseCode(IntEnum):
    """WebSocket close codes the server uses (RFC 6455 section 7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down (drain)
    INVALID_PAYLOAD = 1007  # text frame that is not valid UTF-8
    POLICY_VIOLATION = 1008  # too many protocol errors on one socket
    MESSAGE_TOO_BIG = 1009  # frame or message larger than max_message_bytes
    INTERNAL_ERROR = 1011  # unexpected server error; nothing internal is disclosed
    TRY_AGAIN_LATER = 1013  # max_connections reached


class ProtocolError(Exception):
    """A client-visible error: a stable code, a human message, and the context it concerns."""

    def __init__(self, code: ErrorCode, message: str, context: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.context = context

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE_ERRORS
