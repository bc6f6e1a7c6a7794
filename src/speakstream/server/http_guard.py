"""A guard around uvicorn's HTTP/1.1 protocol for sockets that never complete a request.

uvicorn keeps a socket open for as long as its peer likes until the request headers are
complete: a socket that sends nothing, a slowloris that sends a header byte now and then,
an upgrade request cut short. None of them reaches the app, so none is counted by
``max_connections``. ``guarded_http_protocol(header_timeout_s, max_pending)`` returns an
``asyncio.Protocol`` class for ``uvicorn.Config(http=...)`` (h11 underneath) that:

* closes a socket whose request headers are not complete ``header_timeout_s`` after it
  opened (or after the first byte of a later request on a kept-alive socket), answering
  ``408 Request Timeout``;
* counts the sockets still waiting for their headers and closes a new one at once
  (``503``) while ``max_pending`` are waiting, so they cannot pile up;
* answers a request whose headers are too large with ``431`` and, instead of closing
  with the rest of them unread (a reset that destroys the answer before the client reads
  it), stops writing, reads and discards for up to ``LINGER_S``, then closes.

Once the headers are complete (an HTTP request or a WebSocket upgrade handed to the
WebSocket protocol) the socket is no longer counted and no timer runs for it.
One class per call: each server gets its own count.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_LOGGER = logging.getLogger(__name__)

LINGER_S = 2.0


def _response(status: int, reason: str, body: str = "") -> bytes:
    payload = body.encode("ascii", "replace")
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(payload)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + payload


class PendingSockets:
    """How many sockets of one server are waiting for their request headers."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    @property
    def full(self) -> bool:
        return self.count >= self.limit


def guarded_http_protocol(header_timeout_s: float, max_pending: int) -> type[asyncio.Protocol]:
    """A uvicorn HTTP protocol class with a header deadline and a bound on pending sockets."""
    if header_timeout_s <= 0:
        raise ValueError("header_timeout_s must be positive")
    if max_pending < 1:
        raise ValueError("max_pending must be at least 1")
    pending = PendingSockets(max_pending)

    class GuardedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._waiting = False
            self._header_timer: asyncio.TimerHandle | None = None
            self._lingering = False

        # --- asyncio.Protocol ------------------------------------------------------------

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if pending.full:
                _LOGGER.debug("refusing a socket: %d are waiting for headers", pending.count)
                self._reply_and_close(_response(503, "Service Unavailable", "busy\n"))
                return
            self._start_waiting()

        def data_received(self, data: bytes) -> None:
            if self._lingering:
                return  # discarding the rest of a refused request
            super().data_received(data)
            self._after_data()

        def eof_received(self) -> None:
            self._stop_waiting()
            # returning None lets the transport close

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

        # --- uvicorn's hook for a malformed or oversize request --------------------------

        def send_400_response(self, msg: str) -> None:
            buffered, _ = self.conn.trailing_data
            if len(buffered) > self.conn._max_incomplete_event_size:
                reply = _response(431, "Request Header Fields Too Large", "headers too large\n")
            else:
                reply = _response(400, "Bad Request", msg + "\n")
            self._reply_and_close(reply)

        # --- the header deadline ---------------------------------------------------------

        def _after_data(self) -> None:
            if self.transport.get_protocol() is not self or self.conn.their_state is not h11.IDLE:
                self._stop_waiting()  # headers complete: handed on or being served
            elif self.conn.trailing_data[0]:
                self._start_waiting()  # part of a (later) request: its headers are due

        def _start_waiting(self) -> None:
            if self._waiting or self.transport.is_closing():
                return
            self._waiting = True
            pending.count += 1
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_overdue)

        def _stop_waiting(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            if self._waiting:
                self._waiting = False
                pending.count -= 1

        def _headers_overdue(self) -> None:
            self._header_timer = None
            _LOGGER.debug("closing a socket that sent no complete request headers in time")
            self._reply_and_close(_response(408, "Request Timeout", "request timeout\n"))

        def _reply_and_close(self, reply: bytes) -> None:
            """Answer, stop writing, discard what the peer still sends, close soon."""
            self._stop_waiting()
            transport = self.transport
            if transport.is_closing():
                return
            transport.write(reply)
            self._lingering = True
            if transport.can_write_eof():
                transport.write_eof()
                self.loop.call_later(LINGER_S, transport.close)
            else:
                transport.close()

    return GuardedH11Protocol
