"""uvicorn's WebSocket protocol (websockets-sansio), with a close that a non-reader cannot block.

uvicorn waits for the transport to be writable before it sends anything, the close frame
included. A client that stops reading keeps the transport unwritable forever, so a
server that gives up on it could neither tell it why (1008) nor free the socket. Here, a
close asked for while the transport is not writable is queued behind the data already
buffered (one small frame, not a wait), and the TCP connection is aborted if the client
has not read it all within ``abort_after_s``. Everything else is uvicorn's own code.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

ABORT_AFTER_S = 5.0


class DeadlineWebSocketProtocol(WebSocketsSansIOProtocol):
    abort_after_s = ABORT_AFTER_S

    async def send(self, message: Any) -> None:
        blocked = not self.writable.is_set()
        if (
            blocked
            and message["type"] == "websocket.close"
            and self.handshake_complete
            and self.initial_response is None
            and not self.close_sent
            and not self.transport.is_closing()
        ):
            code = int(message.get("code", 1000))
            reason = message.get("reason", "") or ""
            self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
            self.conn.send_close(code, reason)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.close_timer = self.loop.call_later(self.abort_after_s, self.transport.abort)
            return
        await super().send(message)
