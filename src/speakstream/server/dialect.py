"""How a connection speaks on the wire: the native protocol, or a vendor's, over one core.

A ``Dialect`` only translates. Inbound, it turns one frame from the client into native
client messages for the session (typed ``ClientMessage``s, or native JSON text for the
session to parse) and, where the vendor's protocol wants an answer that is not about
speech (a capability query), replies of its own. Outbound, it turns each server message
and each encoded audio payload into the frames the client expects. It owns no queue, no
task and no pipeline: the connection's outbox, session and synthesizer do the work, so
flush, cancel, order, limits and timings behave the same in every dialect.

A vendor whose conversation ends with the server closing the socket (ElevenLabs after
its final message, Deepgram's ``Close``) returns a ``CloseSocket`` among its frames: the
connection closes the socket there, after everything before it was sent.

``NativeDialect`` is ``/v1/stream``: JSON text frames as they are, audio behind the
16-byte frame header (``protocol.frames``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from speakstream.protocol.errors import CloseCode
from speakstream.protocol.frames import AudioFrameHeader, pack_audio_frame
from speakstream.protocol.messages import ClientMessage
from speakstream.protocol.server_messages import ServerMessage


@dataclass(frozen=True, slots=True)
class CloseSocket:
    """Close the connection here, after the frames before it (a vendor's end of talk)."""

    code: CloseCode = CloseCode.NORMAL
    reason: str = ""


# a WebSocket text or binary frame (or a chunk of an HTTP body), or the end of the talk
Frame = str | bytes | CloseSocket


@dataclass(frozen=True, slots=True)
class BinaryFrame:
    """A binary frame from the client, for the session to answer (native: not accepted)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Inbound:
    messages: Sequence[ClientMessage | str | BinaryFrame] = ()  # str: native JSON text
    replies: Sequence[Frame] = ()  # the dialect's own answers (or errors), sent at once


@dataclass(frozen=True, slots=True)
class AudioPayload:
    """One encoded payload of a context's audio, with where it belongs."""

    stream: int
    context: str
    segment: int
    frame: int  # 0, 1, 2, ... per stream, no gaps
    data: bytes
    encoding: str
    sample_rate_hz: int
    extra: Mapping[str, Any] = field(default_factory=dict)
    start_ms: float = 0.0  # where the audio chunk it came from starts in the context's audio


class Dialect(Protocol):
    def inbound(self, frame: Mapping[str, Any]) -> Inbound:
        """One ASGI ``websocket.receive`` message (``text`` or ``bytes``)."""
        ...

    def event(self, message: ServerMessage) -> list[Frame]: ...

    def audio(self, payload: AudioPayload) -> list[Frame]: ...


class NativeDialect:
    def inbound(self, frame: Mapping[str, Any]) -> Inbound:
        text = frame.get("text")
        if text is not None:
            return Inbound(messages=(text,))
        return Inbound(messages=(BinaryFrame(frame.get("bytes") or b""),))

    def event(self, message: ServerMessage) -> list[Frame]:
        return [message.to_json()]

    def audio(self, payload: AudioPayload) -> list[Frame]:
        header = AudioFrameHeader(payload.stream, payload.segment, payload.frame)
        return [pack_audio_frame(header, payload.data)]
