"""The asyncio driver of one native-protocol connection: the only place with tasks.

It moves bytes between the WebSocket and the sans-I/O ``Session`` and carries out what the
session decides. Concurrent mode (the default) runs, side by side:

* the receive loop (client frames -> session),
* the send loop (bounded outbox -> socket; urgent messages first),
* the idle ticker (input silence -> session.poll),
* one task per synthesis job (worker-pool chunks -> session -> outbox).

Sequential mode (``bidirectional_streaming.enabled = false``) is the baseline the seed
compares against: receive one message, synthesize what it completes, send the audio, and
only then read the next message.

Whatever way the connection ends, every task it started is cancelled and awaited and
every job's worker thread is told to stop, before ``serve`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from speakstream.audio.pcm import PcmChunk
from speakstream.audio.pipeline import StreamPipeline
from speakstream.audio.seams import shape_chunks
from speakstream.engines.base import SynthesisOptions
from speakstream.protocol.errors import CloseCode, ErrorCode, ProtocolError
from speakstream.protocol.frames import AudioFrameHeader, pack_audio_frame
from speakstream.protocol.messages import error_message
from speakstream.protocol.session import (
    Audio,
    CancelJobs,
    Close,
    CloseStream,
    DropStream,
    OpenStream,
    Output,
    Send,
    Session,
    SynthesisJob,
    Synthesize,
)
from speakstream.scheduler import JobClock, SynthesisTimeoutError
from speakstream.server.outbox import Item, Outbox
from speakstream.server.runtime import Runtime

_LOGGER = logging.getLogger(__name__)
_CLOSE_GRACE_S = 2.0


@dataclass(slots=True)
class _Stream:
    context: str
    pipeline: StreamPipeline
    frames: int = 0
    last_segment: int = 0


@dataclass(frozen=True, slots=True)
class _Pcm:
    """Audio queued for a stream, encoded by the send loop in order; None: end of stream."""

    pcm: PcmChunk | None
    segment: int


def _json(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


class Connection:
    def __init__(self, websocket: WebSocket, runtime: Runtime) -> None:
        self.ws = websocket
        self.runtime = runtime
        settings = runtime.settings
        self.concurrent = settings.bidirectional_streaming_enabled
        self.session = Session(runtime.session_config)
        self.outbox = Outbox(settings.queue_size, urgent_size=max(16, settings.queue_size))
        self._streams: dict[int, _Stream] = {}
        self._jobs: dict[int, asyncio.Task[None]] = {}
        self._sequential_jobs: deque[SynthesisJob] = deque()  # sequential mode only
        self._wake = asyncio.Event()
        self._close: Close | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def serve(self) -> None:
        sender: asyncio.Task[None] | None = None
        ticker: asyncio.Task[None] | None = None
        try:
            if self.concurrent:
                sender = asyncio.create_task(self._send_loop(), name="speakstream-send")
                ticker = asyncio.create_task(self._tick_loop(), name="speakstream-tick")
            await self._handle_all(self.session.start())
            await self._receive_loop()
            if sender is not None and self._close is not None:
                # Let the send loop deliver what precedes the close (the error that caused it).
                with contextlib.suppress(TimeoutError, Exception):
                    async with asyncio.timeout(_CLOSE_GRACE_S):
                        await asyncio.shield(sender)
        except WebSocketDisconnect:
            pass
        except Exception:
            _LOGGER.exception("connection failed")
            await self._close_socket(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            await self._shutdown(sender, ticker)

    async def _shutdown(self, *tasks: asyncio.Task[None] | None) -> None:
        self.session.close()
        running = [t for t in (*tasks, *self._jobs.values()) if t is not None]
        for task in running:
            task.cancel()
        # Jobs cancelled here may finish their current chunk in a worker thread; the pool
        # keeps the slot until then. Nothing of this connection survives this gather.
        await asyncio.gather(*running, return_exceptions=True)
        self._jobs.clear()
        self.runtime.active_streams -= len(self._streams)
        self._streams.clear()

    async def _close_socket(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, reason=reason)

    # --- loops -----------------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while self._close is None:
            message: Mapping[str, Any] | None
            if self.concurrent:
                message = await self.ws.receive()
            else:
                message = await self._receive_or_poll()
            if message is None:
                continue
            if message["type"] == "websocket.disconnect":
                return
            now_s = time.monotonic()
            text = message.get("text")
            if text is not None:
                outputs = self.session.receive_text_frame(text, now_s)
            else:
                outputs = self.session.receive_binary_frame(message.get("bytes") or b"", now_s)
            # Waiting here for room stops reading the socket: the client's own backpressure.
            # Messages that queue nothing ordered (cancel, ping, text) only wait for the
            # urgent lane, so a cancel is read even while audio fills the ordered lane.
            await self._handle_all(outputs)
            await self._run_sequential_jobs()
            self._wake.set()

    async def _receive_or_poll(self) -> Mapping[str, Any] | None:
        """Sequential mode: the next message, or None after an idle flush was handled."""
        deadline = self.session.next_deadline_s()
        if deadline is None:
            return await self.ws.receive()
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await self.ws.receive()
        except TimeoutError:
            await self._handle_all(self.session.poll(time.monotonic()))
            await self._run_sequential_jobs()
            return None

    async def _run_sequential_jobs(self) -> None:
        while self._sequential_jobs:
            await self._run_job(self._sequential_jobs.popleft())

    async def _send_loop(self) -> None:
        while True:
            if not await self._send_item(await self.outbox.get()):
                return

    async def _send_item(self, item: Item) -> bool:
        """Send one item; False once the socket has been closed."""
        if item.close_code is not None:
            await self._close_socket(item.close_code, item.close_reason)
            return False
        if self.outbox.is_dropped(item.stream):
            return True
        if isinstance(item.data, _Pcm):
            await self._send_audio(item.stream, item.data)
        elif isinstance(item.data, str):
            await self.ws.send_text(item.data)
        elif isinstance(item.data, bytes):
            await self.ws.send_bytes(item.data)
        return True

    async def _send_audio(self, stream_id: int | None, audio: _Pcm) -> None:
        """Resample and encode (off the loop when heavy), then send each payload as a frame.

        Encoding happens here, in the one send loop, so it follows the stream's order and
        a cancelled stream's queued audio is never encoded at all.
        """
        stream = self._streams.get(stream_id) if stream_id is not None else None
        if stream_id is None or stream is None:
            return
        pipeline = stream.pipeline
        pcm = audio.pcm
        try:
            if pcm is None:
                payloads = (
                    await asyncio.to_thread(pipeline.finish)
                    if pipeline.heavy
                    else pipeline.finish()
                )
            elif pipeline.heavy:
                payloads = await asyncio.to_thread(pipeline.process, pcm)
            else:
                payloads = pipeline.process(pcm)
        except Exception:
            _LOGGER.exception("encoding %s failed", pipeline.encoding)
            # No more audio for this stream; its events (segment, flushed, done) still go,
            # so the client sees the context through to its end.
            self._forget_stream(stream_id)
            error = ProtocolError(
                ErrorCode.ENCODING_FAILED,
                f"encoding {pipeline.encoding} failed; this context's audio stops here",
                stream.context,
            )
            await self.ws.send_text(_json(error_message(error)))
            return
        if pcm is not None:
            stream.last_segment = audio.segment
        for payload in payloads:
            if self.outbox.is_dropped(stream_id):  # cancelled while encoding
                return
            header = AudioFrameHeader(stream_id, stream.last_segment, stream.frames)
            stream.frames += 1
            await self.ws.send_bytes(pack_audio_frame(header, payload))
        if pcm is None:
            self._forget_stream(stream_id)

    def _forget_stream(self, stream_id: int) -> None:
        """No more audio of this stream will be encoded (its events may still go)."""
        if self._streams.pop(stream_id, None) is not None:
            self.runtime.active_streams -= 1

    def _drop_stream(self, stream_id: int) -> None:
        """Cancelled: nothing more of this stream is sent, queued items included."""
        self._forget_stream(stream_id)
        self.outbox.drop_stream(stream_id)

    async def _tick_loop(self) -> None:
        while True:
            self._wake.clear()
            deadline = self.session.next_deadline_s()
            if deadline is None:
                await self._wake.wait()
                continue
            delay_s = deadline - time.monotonic()
            if delay_s > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay_s):
                        await self._wake.wait()
                continue
            await self._handle_all(self.session.poll(time.monotonic()))

    # --- carrying out the session's decisions ----------------------------------------------

    async def _handle_all(self, outputs: list[Output]) -> None:
        """Carry out outputs in order, then apply backpressure (or, sequentially, send)."""
        ordered, urgent = self._apply(outputs)
        if not self.concurrent:
            while (item := self.outbox.pop_nowait()) is not None:
                if not await self._send_item(item):
                    break
        elif ordered or urgent:
            await self.outbox.wait_for_room(ordered=ordered, urgent=urgent)

    def _apply(self, outputs: list[Output]) -> tuple[bool, bool]:
        """Synchronous on purpose: items are queued in the session's order, uninterleaved.

        Returns whether anything went to the ordered lane and to the urgent lane.
        """
        ordered = urgent = False
        for output in outputs:
            if isinstance(output, Audio):
                self.outbox.put_nowait(Item(_Pcm(output.pcm, output.segment), output.stream))
                ordered = True
            elif isinstance(output, Send):
                item = Item(_json(output.message), output.stream)
                self.outbox.put_nowait(item, urgent=output.urgent)
                urgent |= output.urgent
                ordered |= not output.urgent
            elif isinstance(output, Synthesize):
                if self.concurrent:
                    task = asyncio.create_task(self._run_job(output.job), name="speakstream-job")
                    self._jobs[output.job.job_id] = task
                else:
                    self._sequential_jobs.append(output.job)
            elif isinstance(output, OpenStream):
                pipeline = StreamPipeline(
                    output.encoding, output.sample_rate_hz, output.voice_rate_hz
                )
                self._streams[output.stream] = _Stream(output.context, pipeline)
                self.runtime.active_streams += 1
            elif isinstance(output, CloseStream):
                self.outbox.put_nowait(Item(_Pcm(None, 0), output.stream))
                ordered = True
            elif isinstance(output, DropStream):
                self._drop_stream(output.stream)
            elif isinstance(output, CancelJobs):
                for job_id in output.job_ids:
                    running = self._jobs.pop(job_id, None)
                    if running is not None:
                        running.cancel()
            elif isinstance(output, Close):
                self._close = output
                close = Item("", close_code=int(output.code), close_reason=output.reason)
                self.outbox.put_nowait(close, urgent=True)
                urgent = True
        return ordered, urgent

    async def _run_job(self, job: SynthesisJob) -> None:
        try:
            await self._handle_all(await self._synthesize(job))
            self._wake.set()  # released audio moves the playback deadline: re-plan ticks
        finally:
            # Only now: until its last output is queued, the task must stay cancellable
            # by _shutdown and by a cancel of its context.
            self._jobs.pop(job.job_id, None)

    async def _synthesize(self, job: SynthesisJob) -> list[Output]:
        """Stream one job's audio into the session; return the session's final outputs."""
        session = self.session
        clock = JobClock()
        try:
            engine, seams = self.runtime.engine, self.runtime.seams

            def make_chunks() -> Iterator[PcmChunk]:
                raw = engine.synthesize(job.segment.text, job.voice, SynthesisOptions(job.speed))
                return shape_chunks(
                    raw, pause_before=job.pause_before, volume=job.volume, policy=seams
                )

            chunks = self.runtime.pool.stream(
                make_chunks,
                first=job.first,
                timeout_s=self.runtime.settings.task_timeout,
                clock=clock,
            )
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    if (first_chunk_s := clock.first_chunk_after_s) is not None:
                        session.job_timing(job.job_id, 1000 * clock.queue_s, 1000 * first_chunk_s)
                    now_s = time.monotonic()
                    await self._handle_all(
                        session.job_audio(job.job_id, chunk, chunk.duration_ms, now_s, chunk.words)
                    )
            return session.job_finished(
                job.job_id, clock.synthesis_s, clock.queue_s, time.monotonic()
            )
        except SynthesisTimeoutError:
            error = ProtocolError(
                ErrorCode.SYNTHESIS_TIMEOUT,
                f"segment {job.segment.index} took longer than "
                f"{self.runtime.settings.task_timeout:g} s to synthesize; its audio is skipped",
                job.context,
            )
        except Exception:
            _LOGGER.exception("synthesis failed for segment %d", job.segment.index)
            error = ProtocolError(
                ErrorCode.SYNTHESIS_FAILED,
                f"the engine failed on segment {job.segment.index}; its audio is skipped",
                job.context,
            )
        return session.job_failed(job.job_id, error, time.monotonic())
