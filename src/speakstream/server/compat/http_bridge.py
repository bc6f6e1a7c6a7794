"""One HTTP request as a connection: the bridge under the vendors' HTTP streaming endpoints.

A vendor endpoint parses and validates its request into a ``SpeechRequest`` (the text and
the native ``start`` options), picks its ``HttpDialect`` (how audio and events become body
chunks) and calls ``stream_speech``, which checks what can be checked before a byte is
sent (admission, voice, format, rate, text length: each refused with the vendor's own
JSON error and HTTP status) and returns a ``BridgeResponse``.

The response runs one ``Connection`` over an ``HttpBridge``, a ``Socket`` whose client is
the request: ``receive()`` gives the request once (the dialect turns it into ``start`` +
``text`` + ``end``), then waits until the body is over and reports a disconnect;
``send_text``/``send_bytes`` put body chunks into a bounded queue that the HTTP response
reads, so the client's own reading is the backpressure and the connection's write
deadline applies. The dialect ends the body by returning ``END_OF_BODY`` as its last frame
(after the context's ``done``, or an error it could say in the body, as an SSE event);
``ABORT_BODY`` instead breaks the response off (an error the vendor's body format cannot
carry: raw audio), so that the HTTP client sees an incomplete transfer instead of a short
file that looks whole; so does a connection that closes (a client that does not read). A
client that goes away ends the connection: its jobs stop and every counter returns to
where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from speakstream.protocol.errors import ErrorCode, ProtocolError, SpeakstreamError
from speakstream.protocol.messages import EndMessage, StartMessage, TextMessage
from speakstream.protocol.options import START_OPTIONS, Value
from speakstream.protocol.server_messages import Alignment, Done, ErrorMessage, ServerMessage
from speakstream.protocol.stream import stream_format
from speakstream.server.admission import admitted, refusal
from speakstream.server.connection import Connection
from speakstream.server.dialect import AudioPayload, Frame, Inbound
from speakstream.server.runtime import Runtime

BODY_QUEUE_CHUNKS = 8  # body chunks waiting for the HTTP client, at most


class _Marker(bytes):
    """A marker frame a dialect returns last; never sent as data."""


END_OF_BODY: Final[bytes] = _Marker()  # the response is complete
ABORT_BODY: Final[bytes] = _Marker()  # the response breaks off here


class BodyAborted(SpeakstreamError):
    """Raised by the body iterator: the response must not end as if it were complete."""


# The HTTP status for each native error a request can meet before or while streaming.
HTTP_STATUS: Final[Mapping[ErrorCode, int]] = {
    ErrorCode.UNKNOWN_VOICE: 404,
    ErrorCode.TEXT_TOO_LONG: 400,
    ErrorCode.TOO_MANY_CONNECTIONS: 429,
    ErrorCode.SERVER_SHUTTING_DOWN: 503,
    ErrorCode.SYNTHESIS_TIMEOUT: 504,
    ErrorCode.SYNTHESIS_FAILED: 500,
    ErrorCode.ENCODING_FAILED: 500,
    ErrorCode.INTERNAL_ERROR: 500,
}


def http_status(code: ErrorCode | str) -> int:
    return HTTP_STATUS.get(ErrorCode(code), 400)


class VendorError(SpeakstreamError):
    """A refusal in the vendor's own shape: an HTTP status and a JSON body."""

    def __init__(self, status_code: int, body: Mapping[str, Any]) -> None:
        super().__init__(status_code, body)
        self.status_code = status_code
        self.body = body

    def response(self) -> Response:
        return Response(json.dumps(self.body), self.status_code, media_type="application/json")


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    """What an HTTP request asks for, in native terms."""

    text: str
    options: Mapping[str, Value] = field(default_factory=dict)  # ``start`` options
    context: str = "http"


class HttpDialect:
    """Audio payloads become body chunks as they are; events become nothing, except what
    a vendor dialect adds (``on_done``, ``on_error``, ``on_alignment``, ``on_audio``)."""

    def __init__(self, speech: SpeechRequest) -> None:
        self.speech = speech
        self._started = False

    def inbound(self, frame: Mapping[str, Any]) -> Inbound:
        if self._started:
            return Inbound()
        self._started = True
        ctx = self.speech.context
        return Inbound(
            messages=(
                StartMessage(ctx, dict(self.speech.options)),
                TextMessage(ctx, self.speech.text),
                EndMessage(ctx),
            )
        )

    def event(self, message: ServerMessage) -> list[Frame]:
        if isinstance(message, Done):
            return [*self.on_done(message), END_OF_BODY]
        if isinstance(message, ErrorMessage):
            said = self.on_error(message)
            return [*said, END_OF_BODY] if said else [ABORT_BODY]
        if isinstance(message, Alignment):
            return self.on_alignment(message)
        return []

    def audio(self, payload: AudioPayload) -> list[Frame]:
        return self.on_audio(payload)

    # --- what a vendor dialect overrides ------------------------------------------------

    def on_audio(self, payload: AudioPayload) -> list[Frame]:
        return [payload.data]

    def on_alignment(self, message: Alignment) -> list[Frame]:
        return []

    def on_done(self, message: Done) -> list[Frame]:
        return []

    def on_error(self, message: ErrorMessage) -> list[Frame]:
        """The error in the body's own format, if it has one (else the body breaks off)."""
        return []


class HttpBridge:
    """A ``Socket`` whose client is one HTTP request (see the module's docstring)."""

    def __init__(self, queue_chunks: int = BODY_QUEUE_CHUNKS) -> None:
        self._body: asyncio.Queue[bytes | None] = asyncio.Queue(queue_chunks)
        self._given = False
        self._over = asyncio.Event()  # no more body: ended, aborted, or the client left
        self.ended = False  # the dialect ended the body (done or error) in order
        self.client_gone = False
        self.scope: Mapping[str, Any] = {}  # the request's (client, key, endpoint: the log)

    async def receive(self) -> Mapping[str, Any]:
        if not self._given:
            self._given = True
            return {"type": "websocket.receive", "text": ""}
        await self._over.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send_text(self, data: str) -> None:
        await self.send_bytes(data.encode("utf-8"))

    async def send_bytes(self, data: bytes) -> None:
        if self._over.is_set():
            raise OSError("the HTTP response is over")
        if data is END_OF_BODY or data is ABORT_BODY:
            self.ended = data is END_OF_BODY
            self._finish()
            return
        if data:
            await self._body.put(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self._finish()

    def leave(self) -> None:
        """The HTTP client went away (or its response is over)."""
        self.client_gone = True
        self._finish()

    def _finish(self) -> None:
        self._over.set()
        with contextlib.suppress(asyncio.QueueFull):
            self._body.put_nowait(None)

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._body.get() if not self._aborted() else None
            if chunk is None:
                if self.ended:
                    return
                raise BodyAborted
            yield chunk

    def _aborted(self) -> bool:
        return self._over.is_set() and not self.ended


class BridgeResponse(StreamingResponse):
    """Streams one connection's body; the connection runs while the response does."""

    def __init__(
        self,
        runtime: Runtime,
        dialect: HttpDialect,
        *,
        media_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.bridge = HttpBridge()
        self.runtime = runtime
        self.dialect = dialect
        super().__init__(self.bridge.body(), media_type=media_type, headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with admitted(self.runtime):
            self.bridge.scope = scope
            connection = Connection(self.bridge, self.runtime, self.dialect)
            serving = asyncio.ensure_future(connection.serve())
            responding = asyncio.ensure_future(super().__call__(scope, receive, send))
            try:
                await asyncio.wait({serving, responding}, return_when=asyncio.FIRST_COMPLETED)
                if responding.done():  # the client left before the end
                    self.bridge.leave()
                await asyncio.shield(serving)
                if not self.bridge.ended:  # aborted: end the response where it is
                    responding.cancel()
                await asyncio.wait({responding})
            finally:
                self.bridge.leave()
                for task in (serving, responding):
                    task.cancel()
                await asyncio.gather(serving, responding, return_exceptions=True)


def _check_bounds(options: Mapping[str, Value]) -> None:
    """Numbers within the bounds ``start`` declares (vendors' ranges differ from ours)."""
    for option in START_OPTIONS:
        value = options.get(option.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        low = option.low if option.low is not None else float("-inf")
        high = option.high if option.high is not None else float("inf")
        if not low <= value <= high:
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE,
                f"{option.name} must be between {low:g} and {high:g} (got {value:g})",
            )


def request_limit_chars(runtime: Runtime) -> int:
    config = runtime.session_config
    return min(config.max_text_chars, config.max_buffered_chars)


def stream_speech(
    request: Request,
    speech: SpeechRequest,
    dialect: HttpDialect,
    *,
    media_type: str,
    refuse: Callable[[ProtocolError], VendorError],
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The streaming response for ``speech``, or the vendor's error for what can be
    checked before streaming (``refuse`` turns a native error into the vendor's)."""
    runtime: Runtime = request.app.state.runtime
    try:
        refused = refusal(runtime)
        if refused is not None:
            raise refused[0]
        limit = request_limit_chars(runtime)
        if len(speech.text) > limit:
            raise ProtocolError(
                ErrorCode.TEXT_TOO_LONG,
                f"the text has {len(speech.text)} characters; at most {limit} are accepted",
            )
        _check_bounds(speech.options)
        stream_format(StartMessage(speech.context, dict(speech.options)), runtime.session_config)
    except ProtocolError as error:
        return refuse(error).response()
    return BridgeResponse(runtime, dialect, media_type=media_type, headers=headers)


async def read_json(request: Request, max_bytes: int, refuse: Callable[[str], VendorError]) -> Any:
    """The request's JSON body; ``refuse(message)`` (the vendor's own error) is raised
    when it is not JSON, or is larger than ``max_bytes``."""
    size = 0
    parts: list[bytes] = []
    async for part in request.stream():
        size += len(part)
        if size > max_bytes:
            raise refuse(f"the request body is larger than {max_bytes} bytes")
        parts.append(part)
    try:
        return json.loads(b"".join(parts))
    except (ValueError, RecursionError) as exc:
        raise refuse(f"the request body is not valid JSON: {str(exc)[:200]}") from None
