"""Graceful drain: on SIGTERM, finish what is being spoken, then leave with 1001.

``Drain`` knows every live connection (``join`` / ``leave``). ``Drain.run(timeout_s)``
marks the server as draining at once (``/readyz`` fails, new handshakes get 503 with
``Retry-After``: ``server.auth``), then waits until each connection is idle (no context
open, nothing queued, no job running) and tells it to go away (close 1001 "going away");
connections still busy after ``timeout_s`` are told so then. It returns once every
connection has left (or a short grace after the last ``go_away``).

``DrainingServer`` is uvicorn's ``Server`` with its signal handling changed: uvicorn's
own shutdown closes every WebSocket with 1012 at once, so the first SIGTERM (or SIGINT)
runs the drain first and only then lets uvicorn shut down (with no socket left to cut);
the process exits 0. A second signal exits at once (``os._exit``, status 128 + signal).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from types import FrameType
from typing import Protocol

import uvicorn

_LOGGER = logging.getLogger(__name__)

POLL_S = 0.05
LEAVE_GRACE_S = 5.0  # after the last go_away, how long sockets may take to close
RETRY_AFTER_S = 5  # what a refused handshake is told while draining


class Drainable(Protocol):
    def idle(self) -> bool:
        """Nothing open, queued or running: closing now loses nothing."""
        ...

    def go_away(self) -> None:
        """Close with 1001 "going away" (after what is already queued)."""
        ...


class Drain:
    def __init__(self) -> None:
        self.draining = False
        self._members: set[Drainable] = set()
        self._told: set[Drainable] = set()
        self._left = asyncio.Event()

    def __len__(self) -> int:
        return len(self._members)

    def join(self, member: Drainable) -> None:
        self._members.add(member)

    def leave(self, member: Drainable) -> None:
        self._members.discard(member)
        self._told.discard(member)
        self._left.set()

    def _tell(self, member: Drainable) -> None:
        if member not in self._told:
            self._told.add(member)
            member.go_away()

    async def run(self, timeout_s: float) -> None:
        """Drain every connection; returns when all have left (bounded, see the module)."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline_s = loop.time() + timeout_s
        _LOGGER.info(
            "draining: %d connection(s), at most %.1f s for their contexts",
            len(self._members),
            timeout_s,
        )
        while self._members and loop.time() < deadline_s:
            for member in list(self._members):
                if member.idle():
                    self._tell(member)
            await self._wait_change(min(POLL_S, max(0.0, deadline_s - loop.time())))
        if self._members:
            _LOGGER.warning(
                "drain timeout: closing %d connection(s) still busy", len(self._members)
            )
        for member in list(self._members):
            self._tell(member)
        grace_end_s = loop.time() + LEAVE_GRACE_S
        while self._members and loop.time() < grace_end_s:
            await self._wait_change(POLL_S)
        _LOGGER.info("drained")

    async def _wait_change(self, delay_s: float) -> None:
        self._left.clear()
        try:
            async with asyncio.timeout(delay_s):
                await self._left.wait()
        except TimeoutError:
            pass


class DrainingServer(uvicorn.Server):
    """uvicorn's server; the first SIGTERM/SIGINT drains first, a second exits at once."""

    def __init__(self, config: uvicorn.Config, drain: Drain, timeout_s: float) -> None:
        super().__init__(config)
        self.drain = drain
        self.drain_timeout_s = timeout_s
        self._drain_task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded in _captured_signals: uvicorn would raise it again after a clean
        # shutdown, and the process would die of it instead of exiting 0.
        if self.drain.draining or self.should_exit:
            _LOGGER.warning("second %s: exiting at once", signal.Signals(sig).name)
            logging.shutdown()
            os._exit(128 + sig)
        if self._loop is None:  # not started yet: nothing to drain
            self.should_exit = True
            return
        self.drain.draining = True  # /readyz fails from now on
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._drain_task = asyncio.create_task(self._drain_then_exit(), name="speakstream-drain")

    async def _drain_then_exit(self) -> None:
        try:
            await self.drain.run(self.drain_timeout_s)
        finally:
            self.should_exit = True
