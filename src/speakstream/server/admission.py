"""Who may connect, and serving an admitted connection: one path for every endpoint.

``refusal(runtime)`` says why a new connection must be turned away (the server is
draining, already serves ``max_connections``, or the engine is at capacity), as the error and the close code to
answer with, or None. ``admitted(runtime)`` counts a connection for as long as it is
served. ``serve_websocket`` is the whole life of one WebSocket client in any dialect:
accept, refuse in that dialect's words or serve it with ``Connection``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.websockets import WebSocket

from speakstream.protocol.errors import CloseCode, ErrorCode, ProtocolError
from speakstream.protocol.server_messages import ErrorMessage
from speakstream.server.auth import SCOPE_ENDPOINT
from speakstream.server.connection import Connection
from speakstream.server.dialect import CloseSocket, Dialect, NativeDialect
from speakstream.server.runtime import Runtime


def refusal(runtime: Runtime) -> tuple[ProtocolError, CloseCode] | None:
    """Why a new connection cannot be served now, or None when it can."""
    if runtime.shutting_down:
        error = ProtocolError(ErrorCode.SERVER_SHUTTING_DOWN, "the server is shutting down")
        return error, CloseCode.GOING_AWAY
    limit = runtime.settings.max_connections
    if runtime.connections >= limit:
        error = ProtocolError(
            ErrorCode.TOO_MANY_CONNECTIONS,
            f"the server already serves {limit} connections; try again later",
        )
        return error, CloseCode.TRY_AGAIN_LATER
    capacity = runtime.session_config.capacity
    busy = None if capacity is None else capacity.busy()
    return None if busy is None else (busy, CloseCode.TRY_AGAIN_LATER)


@contextlib.asynccontextmanager
async def admitted(runtime: Runtime) -> AsyncIterator[None]:
    """Count one served connection for the duration of the block (then, if the server
    fell idle, give freed memory back)."""
    runtime.connections += 1
    runtime.connections_total += 1
    try:
        yield
    finally:
        runtime.connections -= 1
        await runtime.after_connection()


async def send_refusal(
    websocket: WebSocket, dialect: Dialect, error: ProtocolError, code: CloseCode
) -> None:
    """The error in the dialect's words, then the close (best effort: the client may be gone)."""
    with contextlib.suppress(Exception):
        for frame in dialect.event(ErrorMessage.of(error)):
            if isinstance(frame, str):
                await websocket.send_text(frame)
            elif isinstance(frame, bytes):
                await websocket.send_bytes(frame)
            elif isinstance(frame, CloseSocket):
                break
        await websocket.close(code=code, reason=error.message[:120])


async def serve_websocket(websocket: WebSocket, dialect: Dialect | None = None) -> None:
    """Accept ``websocket`` and serve it in ``dialect`` (native by default), or refuse it."""
    runtime: Runtime = websocket.app.state.runtime
    dialect = dialect or NativeDialect()
    await websocket.accept()
    refused = refusal(runtime)
    if refused is not None:
        error, _ = refused
        runtime.metrics.refused(websocket.scope.get(SCOPE_ENDPOINT, "other"), str(error.code))
        await send_refusal(websocket, dialect, *refused)
        return
    async with admitted(runtime):
        await Connection(websocket, runtime, dialect).serve()
