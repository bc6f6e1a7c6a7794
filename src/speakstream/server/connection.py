"""The asyncio driver of one native-protocol connection: the only place with tasks.

It moves messages between the WebSocket, the sans-I/O ``Session`` and the
``Synthesizer``, and carries out what the session decides. Every outgoing message goes
through the bounded ``Outbox`` and is put into frames once, at sending, by the
connection's ``Dialect`` (``server.dialect``: the native protocol or a vendor's; audio
payloads come from ``AudioStreams``). How receiving, synthesizing and sending interleave is the connection's
``Mode`` (``server.modes``): concurrent (the default) or sequential (the seed's baseline).

Operations hooks (``server.metrics``, ``server.access_log``, ``server.limits``,
``server.drain``): every server message queued is counted and logged (per context at
``done``, per connection at the end; the ``ready`` greeting carries the request id);
client messages beyond ``max_messages_per_s`` (token bucket) or a key's
``max_chars_per_minute_per_key`` get ``rate_limited`` and close 1008; during a drain the
connection closes with 1001 once it is idle (``idle``, ``go_away``).

Whatever way the connection ends (the client leaves, the socket breaks, the send loop
gives up on a client that does not read), every task it started is cancelled and
awaited and every job's worker thread is told to stop, before ``serve`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from starlette.websockets import WebSocketDisconnect

from speakstream.protocol.errors import (
    CloseCode,
    EncodingError,
    ErrorCode,
    ProtocolError,
    SpeakstreamError,
    SynthesisError,
)
from speakstream.protocol.messages import ClientMessage
from speakstream.protocol.outputs import (
    Audio,
    CancelJobs,
    Close,
    CloseStream,
    DropStream,
    OpenStream,
    Output,
    Send,
    SynthesisJob,
    Synthesize,
)
from speakstream.protocol.server_messages import (
    Cancelled,
    Done,
    ErrorMessage,
    Flushed,
    Ready,
    ServerMessage,
)
from speakstream.protocol.session import Session
from speakstream.server.access_log import ConnectionLog
from speakstream.server.auth import SCOPE_ENDPOINT, SCOPE_KEY_ID, SCOPE_REQUEST_ID
from speakstream.server.dialect import BinaryFrame, CloseSocket, Dialect, Frame, NativeDialect
from speakstream.server.limits import TokenBucket
from speakstream.server.modes import mode_for
from speakstream.server.outbox import Item, Outbox
from speakstream.server.runtime import Runtime
from speakstream.server.streams import AudioStreams, StreamAudio
from speakstream.synthesis import SegmentChunk

_LOGGER = logging.getLogger(__name__)


class Socket(Protocol):
    """What the driver needs of a WebSocket (Starlette's, or a test's in-memory one)."""

    async def receive(self) -> Mapping[str, Any]: ...

    async def send_text(self, data: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class SocketGone(SpeakstreamError):
    """The socket cannot carry more: closed, broken, or a client that stopped reading."""


class Connection:
    def __init__(self, websocket: Socket, runtime: Runtime, dialect: Dialect | None = None) -> None:
        self.ws = websocket
        self.runtime = runtime
        self.dialect: Dialect = dialect or NativeDialect()
        settings = runtime.settings
        self.session = Session(runtime.session_config)
        self.outbox = Outbox(settings.queue_size, urgent_size=max(16, settings.queue_size))
        self.streams = AudioStreams()
        self.jobs: dict[int, asyncio.Task[None]] = {}
        self.close_requested: Close | None = None
        self.wake = asyncio.Event()  # the session's next deadline may have moved
        self.mode = mode_for(self, settings.bidirectional_streaming_enabled)
        scope: Mapping[str, Any] = getattr(websocket, "scope", None) or {}
        client = scope.get("client")
        self.key_id: str | None = scope.get(SCOPE_KEY_ID)
        self.request_id: str = scope.get(SCOPE_REQUEST_ID, "")
        endpoint = scope.get(SCOPE_ENDPOINT) or "other"
        self.stats = runtime.metrics.for_connection(endpoint)
        self.log = ConnectionLog(
            f"{client[0]}:{client[1]}" if client else "-", self.key_id, endpoint, self.request_id
        )
        self.bucket = TokenBucket(
            settings.max_messages_per_s, settings.message_burst, time.monotonic()
        )
        self.char_budget = runtime.auth.char_budget(self.key_id)
        self.voices: dict[str, str] = {}  # context -> voice, for metrics and the log
        self._going_away: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def serve(self) -> None:
        self.runtime.drain.join(self)
        self.stats.opened()
        try:
            await self.mode.run()
        except WebSocketDisconnect as exc:
            self.log.closed(exc.code)
        except SocketGone:
            pass
        except Exception:
            _LOGGER.exception("connection failed")
            await self.close_socket(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            await self._shutdown()
            self.runtime.drain.leave(self)
            self.stats.closed()
            self.log.finish()

    # --- the drain (server.drain) ----------------------------------------------------------

    def idle(self) -> bool:
        return (
            self.session.active_contexts == 0
            and not self.jobs
            and len(self.outbox) == 0
            and len(self.streams) == 0
        )

    def go_away(self) -> None:
        if self._going_away is None and self.close_requested is None:
            close = Close(CloseCode.GOING_AWAY, "going away")
            self._going_away = asyncio.create_task(self.mode.handle([close]))

    async def _shutdown(self) -> None:
        for context, metrics in self.session.unfinished(time.monotonic()):
            voice = self.voices.pop(context, "")
            self.stats.context_over(metrics, voice, finished=False)
            self.log.context_over("context unfinished", context, voice, metrics)
        self.session.close()
        running = list(self.jobs.values())
        if self._going_away is not None:
            running.append(self._going_away)
        for task in running:
            task.cancel()
        # Jobs cancelled here may finish their current chunk in a worker thread; the pool
        # keeps the slot until then. Nothing of this connection survives this gather.
        await asyncio.gather(*running, return_exceptions=True)
        self.jobs.clear()
        self.runtime.active_streams -= len(self.streams)

    async def close_socket(self, code: int, reason: str) -> None:
        self.log.closed(code)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.runtime.settings.write_timeout_s):
                await self.ws.close(code=code, reason=reason)

    # --- the socket ------------------------------------------------------------------------

    async def read_frame(self) -> Mapping[str, Any] | None:
        """The next client frame; None once the client has gone."""
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            self.log.closed(message.get("code"))
            return None
        return message

    async def feed(self, message: Mapping[str, Any]) -> None:
        """Give a client frame (through the dialect) to the session, and carry out what
        it decides."""
        inbound = self.dialect.inbound(message)
        refusal = self._over_limit(inbound.messages, time.monotonic())
        if refusal is not None:
            error = ProtocolError(ErrorCode.RATE_LIMITED, refusal)
            _LOGGER.warning("closing a connection: %s", refusal.split(";")[0])
            close = Close(CloseCode.POLICY_VIOLATION, "rate limited")
            await self.mode.handle([Send(ErrorMessage.of(error), urgent=True), close])
            return
        outputs: list[Output] = []
        for reply in inbound.replies:
            self.outbox.put_nowait(Item(reply), urgent=True)
        for item in inbound.messages:
            now_s = time.monotonic()
            if isinstance(item, str):
                outputs += self.session.receive_text_frame(item, now_s)
            elif isinstance(item, BinaryFrame):
                outputs += self.session.receive_binary_frame(item.data, now_s)
            else:
                outputs += self.session.receive_message(item, now_s)
        await self.mode.handle(outputs)
        self.wake.set()

    def _over_limit(
        self, messages: Sequence[ClientMessage | str | BinaryFrame], now_s: float
    ) -> str | None:
        """Why this client frame breaks a rate limit, or None (it is then counted)."""
        if not self.bucket.take(now_s):
            return (
                f"more than {self.bucket.rate_per_s:g} messages per second "
                f"(burst {self.bucket.burst}); closing"
            )
        if self.char_budget is not None:
            characters = sum(_text_chars(item) for item in messages)
            if characters and not self.char_budget.add(characters, now_s):
                return (
                    f"this key's {self.char_budget.limit} characters per minute are spent; closing"
                )
        return None

    async def send_item(self, item: Item) -> bool:
        """Send one outbox item; False once the socket has been closed on purpose.

        Raises ``SocketGone`` when the socket is broken or a write takes longer than
        ``write_timeout_s`` (a client that does not read)."""
        if item.close_code is not None:
            await self.close_socket(item.close_code, item.close_reason)
            return False
        if self.outbox.is_dropped(item.stream):
            return True
        if isinstance(item.data, StreamAudio) and item.stream is not None:
            try:
                payloads = await self.streams.encode(item.stream, item.data)
            except EncodingError as error:
                self._stream_over(item.stream)
                # Its events (segment, flushed, done) still go: the client sees it end.
                self.outbox.put_nowait(Item(ErrorMessage.of(error)), urgent=True)
                return True
            if item.data.pcm is None:
                self._stream_over(item.stream)
            for payload in payloads:
                if self.outbox.is_dropped(item.stream):  # cancelled while encoding
                    return True
                for frame in self.dialect.audio(payload):
                    if not await self._write(frame):
                        return False
        elif isinstance(item.data, ServerMessage):
            if isinstance(item.data, Flushed) and item.stream is not None:
                # the resampler's held-back audio belongs before `flushed`
                for payload in await self.streams.flush(item.stream):
                    for frame in self.dialect.audio(payload):
                        if not await self._write(frame):
                            return False
            for frame in self.dialect.event(item.data):
                if not await self._write(frame):
                    return False
        elif isinstance(item.data, str | bytes | CloseSocket):
            return await self._write(item.data)
        return True

    async def _write(self, data: Frame) -> bool:
        """Write one frame; False once it was the dialect's ``CloseSocket``."""
        if isinstance(data, CloseSocket):
            self.close_requested = Close(data.code, data.reason)
            await self.close_socket(data.code, data.reason)
            return False
        timeout_s = self.runtime.settings.write_timeout_s
        try:
            started_s = time.perf_counter()
            async with asyncio.timeout(timeout_s):
                if isinstance(data, str):
                    await self.ws.send_text(data)
                else:
                    await self.ws.send_bytes(data)
            self.stats.sent(time.perf_counter() - started_s)
        except TimeoutError:
            _LOGGER.warning("closing a connection whose client read nothing for %.1f s", timeout_s)
            self.close_requested = Close(CloseCode.POLICY_VIOLATION, "client does not read")
            # queued behind the unread data (server.ws_protocol): the client learns why
            await self.close_socket(CloseCode.POLICY_VIOLATION, "client does not read")
            raise SocketGone from None
        except WebSocketDisconnect:
            raise SocketGone from None
        except (OSError, RuntimeError) as exc:  # the transport is gone (starlette/uvicorn)
            raise SocketGone from exc
        return True

    # --- carrying out the session's decisions ----------------------------------------------

    def apply(self, outputs: list[Output]) -> tuple[bool, bool]:
        """Synchronous on purpose: items are queued in the session's order, uninterleaved.

        Returns whether anything went to the ordered lane and to the urgent lane.
        """
        ordered = urgent = False
        for output in outputs:
            if isinstance(output, Audio):
                self.outbox.put_nowait(Item(StreamAudio(output.pcm, output.segment), output.stream))
                ordered = True
            elif isinstance(output, Send):
                item = Item(self._observe(output.message), output.stream)
                self.outbox.put_nowait(item, urgent=output.urgent)
                urgent |= output.urgent
                ordered |= not output.urgent
            elif isinstance(output, Synthesize):
                self.voices[output.job.context] = output.job.voice
                self.mode.start_job(output.job)
            elif isinstance(output, OpenStream):
                self.streams.open(output)
                self.runtime.active_streams += 1
            elif isinstance(output, CloseStream):
                end = StreamAudio(None, output.last_segment)
                self.outbox.put_nowait(Item(end, output.stream))
                ordered = True
            elif isinstance(output, DropStream):
                self._stream_over(output.stream)
                self.outbox.drop_stream(output.stream)
            elif isinstance(output, CancelJobs):
                for job_id in output.job_ids:
                    running = self.jobs.pop(job_id, None)
                    if running is not None:
                        running.cancel()
            elif isinstance(output, Close):
                self.close_requested = output
                close = Item("", close_code=int(output.code), close_reason=output.reason)
                self.outbox.put_nowait(close, urgent=True)
                urgent = True
        return ordered, urgent

    def _observe(self, message: ServerMessage) -> ServerMessage:
        """Count and log a message on its way out; ``ready`` gets the request id."""
        if isinstance(message, Ready) and self.request_id:
            return dataclasses.replace(
                message, info={**message.info, "request_id": self.request_id}
            )
        context = getattr(message, "context", None)
        voice = self.voices.get(context, "") if isinstance(context, str) else ""
        if isinstance(message, Done | Cancelled):  # the context is over
            self.voices.pop(message.context, None)
        self.stats.observe(message, voice)
        self.log.observe(message, voice)
        return message

    def _stream_over(self, stream_id: int) -> None:
        if self.streams.forget(stream_id):
            self.runtime.active_streams -= 1

    async def run_job(self, job: SynthesisJob) -> None:
        """Synthesize one job, feeding its audio to the session as it comes."""
        session = self.session
        try:
            try:
                async for event in self.runtime.synthesizer.run(
                    job,
                    owner=self,
                    on_start=lambda: session.job_started(job.job_id, time.monotonic()),
                ):
                    now_s = time.monotonic()
                    if isinstance(event, SegmentChunk):
                        pcm = event.pcm
                        outputs = session.job_audio(
                            job.job_id, pcm, pcm.duration_ms, now_s, pcm.words, event.timing
                        )
                    else:
                        self.stats.job_finished(job.voice, event.synthesis_s, event.queue_s)
                        outputs = session.job_finished(
                            job.job_id, event.synthesis_s, event.queue_s, now_s
                        )
                    await self.mode.handle(outputs)
            except SynthesisError as error:
                await self.mode.handle(session.job_failed(job.job_id, error, time.monotonic()))
            self.wake.set()  # released audio moves the playback deadline: re-plan ticks
        finally:
            # Only now: until its last output is queued, the task must stay cancellable
            # by the shutdown and by a cancel of its context.
            self.jobs.pop(job.job_id, None)


def _text_chars(item: ClientMessage | str | BinaryFrame) -> int:
    """Characters of speech text in one inbound message (0 for anything else)."""
    if isinstance(item, str):
        try:
            item = json.loads(item)
        except ValueError:
            return 0
        if isinstance(item, dict) and item.get("type") == "text":
            text = item.get("text")
            return len(text) if isinstance(text, str) else 0
        return 0
    text = getattr(item, "text", None)
    return len(text) if isinstance(text, str) else 0
