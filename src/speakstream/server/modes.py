"""How one connection interleaves receiving, synthesizing and sending: two small policies.

* ``ConcurrentMode`` (the default): a receive loop, a send loop (bounded outbox ->
  socket, urgent messages first), an idle ticker (input silence and playback deadlines ->
  ``session.poll``) and one task per synthesis job, side by side. The connection ends
  when the client leaves or the send loop stops (socket closed on purpose, broken, or a
  client that does not read); the other loops are then cancelled.
* ``SequentialMode`` (``bidirectional_streaming.enabled = false``): the seed's baseline
  for comparison. Receive one message, synthesize what it completes, send the audio, and
  only then read the next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

from speakstream.protocol.outputs import Close, Output, SynthesisJob
from speakstream.protocol.session import Session
from speakstream.server.outbox import Item, Outbox
from speakstream.server.runtime import Runtime


class Driver(Protocol):
    """What a mode needs of its connection (``server.connection.Connection``)."""

    session: Session
    outbox: Outbox
    runtime: Runtime
    jobs: dict[int, asyncio.Task[None]]
    close_requested: Close | None
    wake: asyncio.Event

    async def read_frame(self) -> Mapping[str, Any] | None: ...

    async def feed(self, message: Mapping[str, Any]) -> None: ...

    async def send_item(self, item: Item) -> bool: ...

    def apply(self, outputs: list[Output]) -> tuple[bool, bool]: ...

    async def run_job(self, job: SynthesisJob) -> None: ...


_CLOSE_GRACE_S = 2.0


class Mode(Protocol):
    async def run(self) -> None: ...

    async def handle(self, outputs: list[Output]) -> None:
        """Carry out a session step's outputs (queue, then send or wait for room)."""
        ...

    def start_job(self, job: SynthesisJob) -> None: ...


def mode_for(conn: Driver, concurrent: bool) -> Mode:
    return ConcurrentMode(conn) if concurrent else SequentialMode(conn)


class ConcurrentMode:
    def __init__(self, conn: Driver) -> None:
        self.conn = conn

    async def run(self) -> None:
        conn = self.conn
        sender = asyncio.create_task(self._send_loop(), name="speakstream-send")
        receiver = asyncio.create_task(self._receive_loop(), name="speakstream-receive")
        ticker = asyncio.create_task(self._tick_loop(), name="speakstream-tick")
        try:
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            receiver_ok = receiver in done and receiver.exception() is None
            if receiver_ok and conn.close_requested is not None:
                # Let the send loop deliver what precedes the close (the error behind it).
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(_CLOSE_GRACE_S):
                        await asyncio.shield(sender)
            for task in done:
                task.result()  # the way the connection ended, if it was an exception
        finally:
            for task in (sender, receiver, ticker):
                task.cancel()
            await asyncio.gather(sender, receiver, ticker, return_exceptions=True)

    async def handle(self, outputs: list[Output]) -> None:
        ordered, urgent = self.conn.apply(outputs)
        # Waiting here for room stops reading the socket: the client's own backpressure.
        # Steps that queue nothing ordered (cancel, ping, errors) only wait for the urgent
        # lane, so a cancel is read while audio fills the other.
        waited = await self.conn.outbox.wait_for_room(ordered=ordered, urgent=urgent)
        if waited:
            self.conn.runtime.backpressure_waits += 1

    def start_job(self, job: SynthesisJob) -> None:
        task = asyncio.create_task(self.conn.run_job(job), name="speakstream-job")
        self.conn.jobs[job.job_id] = task

    async def _receive_loop(self) -> None:
        conn = self.conn
        await self.handle(conn.session.start())
        while conn.close_requested is None:
            message = await conn.read_frame()
            if message is None:
                return
            await conn.feed(message)

    async def _send_loop(self) -> None:
        outbox = self.conn.outbox
        while await self.conn.send_item(await outbox.get()):
            pass

    async def _tick_loop(self) -> None:
        conn = self.conn
        while True:
            conn.wake.clear()
            deadline = conn.session.next_deadline_s()
            if deadline is None:
                await conn.wake.wait()
                continue
            delay_s = deadline - time.monotonic()
            if delay_s > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay_s):
                        await conn.wake.wait()
                continue
            await self.handle(conn.session.poll(time.monotonic()))


class SequentialMode:
    def __init__(self, conn: Driver) -> None:
        self.conn = conn
        self._jobs: deque[SynthesisJob] = deque()
        self._closed = False

    async def run(self) -> None:
        conn = self.conn
        await self.handle(conn.session.start())
        while conn.close_requested is None and not self._closed:
            deadline = conn.session.next_deadline_s()
            try:
                async with asyncio.timeout(
                    None if deadline is None else max(0.0, deadline - time.monotonic())
                ):
                    message = await conn.read_frame()
            except TimeoutError:  # input silence or a listener about to run dry
                await self.handle(conn.session.poll(time.monotonic()))
            else:
                if message is None:
                    return
                await conn.feed(message)
            await self._run_jobs()

    async def handle(self, outputs: list[Output]) -> None:
        self.conn.apply(outputs)
        while not self._closed and (item := self.conn.outbox.pop_nowait()) is not None:
            if not await self.conn.send_item(item):
                self._closed = True

    def start_job(self, job: SynthesisJob) -> None:
        self._jobs.append(job)

    async def _run_jobs(self) -> None:
        while self._jobs:
            await self.conn.run_job(self._jobs.popleft())
