"""Errors of speakstream: one root, stable codes, one table from code to behaviour.

Every exception speakstream raises on purpose derives from ``SpeakstreamError``. Those a
client can see carry an ``ErrorCode`` (a stable string, never renamed, only added):

* ``ProtocolError``: the client's mistake (malformed or invalid input, a limit reached);
* ``SynthesisError``: the engine could not make a segment's audio (failed, timed out);
* ``EncodingError``: the audio could not be encoded in the context's format.

``ERRORS`` says, once per code, whether the same request may succeed if simply sent again
(``retryable``). Every reason the server closes a socket has exactly one ``CloseCode``.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    BUSY = "busy"
    RATE_LIMITED = "rate_limited"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN_ORIGIN = "forbidden_origin"
    UNSUPPORTED_BIT_RATE = "unsupported_bit_rate"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    retryable: bool  # the same request may succeed later, unchanged


_CLIENT_MISTAKE = ErrorSpec(retryable=False)
_TRANSIENT = ErrorSpec(retryable=True)

ERRORS: dict[ErrorCode, ErrorSpec] = {code: _CLIENT_MISTAKE for code in ErrorCode} | {
    ErrorCode.SYNTHESIS_TIMEOUT: _TRANSIENT,
    ErrorCode.TOO_MANY_CONNECTIONS: _TRANSIENT,
    ErrorCode.SERVER_SHUTTING_DOWN: _TRANSIENT,
    ErrorCode.INTERNAL_ERROR: _TRANSIENT,
    ErrorCode.BUSY: _TRANSIENT,
    ErrorCode.RATE_LIMITED: _TRANSIENT,
}


class CloseCode(IntEnum):
    """WebSocket close codes the server uses (RFC 6455 section 7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down (drain)
    INVALID_PAYLOAD = 1007  # text frame that is not valid UTF-8
    POLICY_VIOLATION = 1008  # too many protocol errors, a flood of messages, a non-reader
    MESSAGE_TOO_BIG = 1009  # frame or message larger than max_message_bytes
    INTERNAL_ERROR = 1011  # unexpected server error; nothing internal is disclosed
    TRY_AGAIN_LATER = 1013  # max_connections reached, or the engine is at capacity


class SpeakstreamError(Exception):
    """The root of every error speakstream raises on purpose."""


class ClientVisibleError(SpeakstreamError):
    """An error a client is told about: a stable code, a human message, its context."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        context: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.context = context
        self.retry_after_s = retry_after_s  # a hint for retryable errors

    @property
    def retryable(self) -> bool:
        return ERRORS[self.code].retryable

    def for_context(self, context: str) -> ClientVisibleError:
        """The same error, about ``context``."""
        return type(self)(self.code, self.message, context, self.retry_after_s)


class ProtocolError(ClientVisibleError):
    """The client's mistake: malformed or invalid input, or a limit it reached."""


class SynthesisError(ClientVisibleError):
    """The engine could not make a segment's audio (``synthesis_failed``/``_timeout``)."""


class EncodingError(ClientVisibleError):
    """The audio could not be encoded in the context's format (``encoding_failed``)."""
