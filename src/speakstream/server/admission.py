"""Who may open a connection: one admission path for every endpoint (native and vendor).

``refusal(runtime)`` says why a new connection must be refused now (the server is
draining, or ``max_connections`` are served), or None; ``admitted(runtime)`` counts one
connection for as long as its block runs. The WebSocket endpoint and the HTTP bridge of
the compatibility endpoints both use these two, so the limits and the counters
(``runtime.connections``, ``runtime.connections_total``) mean the same everywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from speakstream.protocol.errors import CloseCode, ErrorCode, ProtocolError
from speakstream.server.runtime import Runtime


def refusal(runtime: Runtime) -> tuple[ProtocolError, CloseCode] | None:
    """The error (and WebSocket close code) refusing a new connection now, or None."""
    if runtime.shutting_down:
        error = ProtocolError(ErrorCode.SERVER_SHUTTING_DOWN, "the server is shutting down")
        return error, CloseCode.GOING_AWAY
    if runtime.connections >= runtime.settings.max_connections:
        error = ProtocolError(
            ErrorCode.TOO_MANY_CONNECTIONS,
            f"the server already serves {runtime.settings.max_connections} connections; "
            "try again later",
        )
        return error, CloseCode.TRY_AGAIN_LATER
    return None


@contextlib.contextmanager
def admitted(runtime: Runtime) -> Iterator[None]:
    """Count one connection while the block runs."""
    runtime.connections += 1
    runtime.connections_total += 1
    try:
        yield
    finally:
        runtime.connections -= 1
