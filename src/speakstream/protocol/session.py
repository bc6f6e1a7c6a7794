"""Sans-I/O session: one per connection, no sockets, no tasks, no clock of its own.

Feed it what happened (``receive_text_frame``, ``receive_binary_frame``, ``poll``,
``job_audio``, ``job_finished``, ``job_failed``) with the current monotonic time; each call
returns the ``Output``s the driver must carry out, in order (``protocol.outputs`` says
what each means).

The session dispatches client messages to the context streams it keeps in a table
(``protocol.stream``: per-context text, jobs and ordered release), and owns what spans
contexts: the dispatch order of jobs (a context's first segment first), the bound of
``max_jobs_in_flight`` jobs per connection dispatched and not yet released (which bounds
the audio held for reordering), the error count, and what is remembered of contexts that
are over (``protocol.finished``).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Sequence
from enum import Enum, auto
from typing import Any

from speakstream.protocol.carry import NO_CONTEXT, affordable
from speakstream.protocol.errors import (
    ClientVisibleError,
    CloseCode,
    ErrorCode,
    ProtocolError,
)
from speakstream.protocol.finished import FinishedContexts
from speakstream.protocol.messages import (
    CancelMessage,
    ClientMessage,
    EndMessage,
    FlushMessage,
    PingMessage,
    StartMessage,
    TextMessage,
    parse_client_message,
)
from speakstream.protocol.options import apply_chunking
from speakstream.protocol.outputs import (
    CancelJobs,
    Close,
    DropStream,
    OpenStream,
    Output,
    Send,
    SessionConfig,
    Synthesize,
)
from speakstream.protocol.ready import ready_message
from speakstream.protocol.server_messages import Cancelled, ErrorMessage, Pong
from speakstream.protocol.stream import (
    ContextState,
    ContextStream,
    Job,
    JobState,
    JobTiming,
    stream_format,
)
from speakstream.protocol.timeline import SpokenTimeline, Timed
from speakstream.segmenter import Segment, Segmenter

__all__ = ["JobTiming", "Session", "SessionState"]


class SessionState(Enum):
    OPEN = auto()
    CLOSED = auto()  # the connection is gone, or is closing after too many errors


class Session:
    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self.state = SessionState.OPEN
        self._contexts: dict[str, ContextStream] = {}
        self._finished = FinishedContexts(config.max_finished_streams, config.max_contexts)
        self._jobs: dict[int, Job] = {}  # not yet released whole
        self._dispatch_queue: deque[Job] = deque()
        self._in_flight = 0
        self._next_stream = 1
        self._next_job = 1
        self._errors = 0

    # --- inputs ------------------------------------------------------------------------

    def start(self) -> list[Output]:
        """The ``ready`` greeting."""
        return [Send(ready_message(self.config))]

    def receive_text_frame(self, data: str, now_s: float) -> list[Output]:
        """A JSON text frame of the native protocol."""
        try:
            message = parse_client_message(data)
        except ProtocolError as error:
            out: list[Output] = []
            self._on_error(error, out)
            return out
        return self.receive_message(message, now_s)

    def receive_message(self, message: ClientMessage, now_s: float) -> list[Output]:
        """A client message already parsed (by the native parser or a vendor dialect)."""
        out: list[Output] = []
        try:
            if isinstance(message, TextMessage):
                self._on_text(message, now_s, out)
            elif isinstance(message, StartMessage):
                self._on_start(message, now_s, out)
            elif isinstance(message, FlushMessage):
                self._on_flush(message.context, now_s, out)
            elif isinstance(message, EndMessage):
                self._on_end(message.context, now_s, out)
            elif isinstance(message, CancelMessage):
                self._on_cancel(message, now_s, out)
            elif isinstance(message, PingMessage):
                out.append(Send(Pong(message.id), urgent=True))
        except ProtocolError as error:
            self._on_error(error, out)
        self._dispatch(out, now_s)
        return out

    def receive_binary_frame(self, data: bytes, now_s: float) -> list[Output]:
        out: list[Output] = []
        self._on_error(
            ProtocolError(
                ErrorCode.BINARY_NOT_SUPPORTED,
                f"binary frames ({len(data)} bytes) are not accepted; send JSON text frames",
            ),
            out,
        )
        return out

    def poll(self, now_s: float) -> list[Output]:
        """Time-driven cuts (``next_deadline_s`` says when): idle flushes, and cuts made
        because a listener would otherwise run out of audio."""
        out: list[Output] = []
        cfg = self.config
        for ctx in list(self._contexts.values()):
            cuts = ctx.timed_cuts(now_s, cfg.speed, cfg.playback_low_water_ms)
            self._enqueue(ctx, cuts, now_s)
        self._dispatch(out, now_s)
        return out

    def next_deadline_s(self) -> float | None:
        cfg = self.config
        deadlines = [
            d
            for ctx in self._contexts.values()
            for d in ctx.deadlines(cfg.speed, cfg.playback_low_water_ms)
        ]
        return min(deadlines, default=None)

    def job_audio(
        self,
        job_id: int,
        pcm: Any,
        duration_ms: float,
        now_s: float,
        words: Sequence[Timed] = (),
        timing: JobTiming | None = None,
    ) -> list[Output]:
        """A chunk of a job's audio; ``words``: its word timings, if the engine has them;
        ``timing``: with the job's first chunk, how long it waited and took to start."""
        out: list[Output] = []
        job = self._jobs.get(job_id)
        if job is None or job.done:
            return out  # cancelled, timed out or finished: late audio is discarded
        if timing is not None and job.timing is None:
            job.timing = timing
        ctx = self._contexts[job.spec.context]
        job.chunks.append((pcm, duration_ms, words))
        job.audio_ms += duration_ms
        ctx.metrics.audio_ms += duration_ms
        self._release(ctx, now_s, out)
        return out

    def job_started(self, job_id: int, now_s: float) -> None:
        """A worker took the job (the engine backlog's forecasts count it as running)."""
        job = self._jobs.get(job_id)
        if job is not None and not job.done:
            ctx = self._contexts[job.spec.context]
            if ctx.backlog is not None:
                job.shared = ctx.backlog.start((ctx, job_id), now_s)

    def job_finished(
        self, job_id: int, synthesis_s: float, queue_s: float, now_s: float
    ) -> list[Output]:
        job = self._jobs.get(job_id)
        if job is None or job.done:
            return []
        ctx = self._contexts[job.spec.context]
        job.state = JobState.FINISHED
        _leave_backlog(ctx, job, now_s)
        spec = job.spec
        own_chars = spec.segment.end - spec.segment.start
        engine_chars = own_chars + len(spec.left_context) + len(spec.right_context)
        self.config.speed.observe(
            engine_chars, 1000.0 * synthesis_s, job.audio_ms, own_chars, shared=job.shared
        )
        ctx.metrics.synthesis_ms += 1000.0 * synthesis_s
        ctx.metrics.queue_ms += 1000.0 * queue_s
        return self._after_job(ctx, now_s)

    def job_failed(self, job_id: int, error: ClientVisibleError, now_s: float) -> list[Output]:
        job = self._jobs.get(job_id)
        if job is None or job.done:
            return []
        job.state = JobState.FAILED
        job.error = error
        ctx = self._contexts[job.spec.context]
        _leave_backlog(ctx, job, now_s)
        return self._after_job(ctx, now_s)

    def close(self) -> list[Output]:
        """The connection is gone: every job still known must stop."""
        self.state = SessionState.CLOSED
        ids = tuple(job_id for job_id, job in self._jobs.items() if job.state is JobState.RUNNING)
        for job in self._jobs.values():
            ctx = self._contexts.get(job.spec.context)
            if ctx is not None:
                _leave_backlog(ctx, job)
        self._jobs.clear()
        self._dispatch_queue.clear()
        for cid in list(self._contexts):
            self._forget(cid)
        return [CancelJobs(ids)] if ids else []

    # --- introspection (tests, metrics) --------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.state is SessionState.CLOSED

    def context(self, cid: str) -> ContextStream | None:
        """The open context ``cid`` (for introspection: tests, metrics)."""
        return self._contexts.get(cid)

    @property
    def active_contexts(self) -> int:
        return len(self._contexts)

    def unfinished(self, now_s: float) -> list[tuple[str, dict[str, Any]]]:
        """Each open context and its ``done`` metrics as they stand: what a connection
        that goes now leaves unfinished (its stalls were heard all the same)."""
        return [(cid, ctx.metrics.record(now_s)) for cid, ctx in self._contexts.items()]

    @property
    def jobs_in_flight(self) -> int:
        return self._in_flight

    # --- message handlers -----------------------------------------------------------------

    def _on_error(self, error: ProtocolError, out: list[Output]) -> None:
        if not error.retryable:  # (``busy`` is the server's state, not the client's mistake)
            self._errors += 1
        out.append(Send(ErrorMessage.of(error), urgent=True))
        if self._errors > self.config.max_errors and self.state is SessionState.OPEN:
            self.state = SessionState.CLOSED
            limit = ProtocolError(
                ErrorCode.TOO_MANY_ERRORS,
                f"more than {self.config.max_errors} protocol errors; closing the connection",
            )
            out.append(Send(ErrorMessage.of(limit), urgent=True))
            out.append(Close(CloseCode.POLICY_VIOLATION, "too many protocol errors"))

    def _new_context(self, message: StartMessage, now_s: float, out: list[Output]) -> ContextStream:
        cfg = self.config
        cid = message.context
        if len(self._contexts) >= cfg.max_contexts:
            raise ProtocolError(
                ErrorCode.TOO_MANY_CONTEXTS,
                f"at most {cfg.max_contexts} contexts may be open on one connection; "
                "end or cancel one first",
                cid,
            )
        capacity = cfg.capacity
        busy = None if capacity is None else capacity.busy(cid)
        if busy is not None:
            raise busy
        fmt, native_hz = stream_format(message, cfg)
        policy = apply_chunking(cfg.policy, message.options)
        if policy.preemptive_generation and cfg.first_segment_budget_ms > 0:
            first_chars = cfg.speed.chars_within_ms(cfg.first_segment_budget_ms)
            policy = dataclasses.replace(
                policy, first_segment_max_chars=min(first_chars, policy.max_segment_chars)
            )
        backlog = None if capacity is None else capacity.backlog
        ctx = ContextStream(cid, self._next_stream, fmt, Segmenter(policy), now_s, backlog)
        self._next_stream += 1
        self._contexts[cid] = ctx
        if capacity is not None:
            capacity.active += 1
        self._finished.forget(cid)
        out.append(
            OpenStream(
                ctx.stream, cid, fmt.encoding, fmt.sample_rate_hz, native_hz, fmt.bit_rate_kbps
            )
        )
        return ctx

    def _on_start(self, message: StartMessage, now_s: float, out: list[Output]) -> None:
        if message.context in self._contexts:
            raise ProtocolError(
                ErrorCode.CONTEXT_EXISTS,
                f"context {message.context!r} is already open; 'start' must come before its text",
                message.context,
            )
        self._new_context(message, now_s, out)

    def _on_text(self, message: TextMessage, now_s: float, out: list[Output]) -> None:
        cfg = self.config
        cid = message.context
        if len(message.text) > cfg.max_text_chars:
            raise ProtocolError(
                ErrorCode.TEXT_TOO_LONG,
                f"a text message may carry at most {cfg.max_text_chars} characters "
                f"(got {len(message.text)}); send it in pieces",
                cid,
            )
        ctx = self._contexts.get(cid)
        if ctx is None:
            ctx = self._new_context(StartMessage(cid), now_s, out)
        elif ctx.state is ContextState.ENDED:
            raise ProtocolError(
                ErrorCode.CONTEXT_ENDED, f"context {cid!r} has ended; use a new context", cid
            )
        if ctx.unspoken_chars + len(message.text) > cfg.max_buffered_chars:
            raise ProtocolError(
                ErrorCode.TEXT_TOO_LONG,
                f"context {cid!r} would hold more than {cfg.max_buffered_chars} characters "
                "not yet spoken; wait for audio before sending more",
                cid,
            )
        segments = ctx.add_text(message.text, now_s, cfg.speed, cfg.playback_low_water_ms)
        self._enqueue(ctx, segments, now_s)

    def _open(self, cid: str, verb: str) -> ContextStream:
        """The open context ``cid`` that takes ``verb`` (flush, end)."""
        ctx = self._contexts.get(cid)
        if ctx is None:
            raise ProtocolError(ErrorCode.UNKNOWN_CONTEXT, f"no open context {cid!r}", cid)
        if ctx.state is ContextState.ENDED:
            raise ProtocolError(
                ErrorCode.CONTEXT_ENDED, f"context {cid!r} has ended; it takes no {verb}", cid
            )
        return ctx

    def _on_flush(self, cid: str, now_s: float, out: list[Output]) -> None:
        ctx = self._open(cid, "flush")
        self._enqueue(ctx, ctx.segmenter.flush(), now_s)
        ctx.mark_flushed()
        self._release(ctx, now_s, out)

    def _on_end(self, cid: str, now_s: float, out: list[Output]) -> None:
        ctx = self._open(cid, "end")
        self._enqueue(ctx, ctx.segmenter.flush(), now_s)
        ctx.mark_end()
        self._release(ctx, now_s, out)

    def _forget(self, cid: str) -> ContextStream | None:
        """Take an open context out of the table (done, cancelled, or the end)."""
        ctx = self._contexts.pop(cid, None)
        if ctx is not None and self.config.capacity is not None:
            self.config.capacity.active -= 1
        return ctx

    def _on_cancel(self, message: CancelMessage, now_s: float, out: list[Output]) -> None:
        cid = message.context
        ctx = self._forget(cid)
        if ctx is None:
            finished = self._finished.take(cid)
            if finished is None:
                raise ProtocolError(ErrorCode.UNKNOWN_CONTEXT, f"no context {cid!r} to cancel", cid)
            stream, timeline = finished
            out.append(DropStream(stream))
            out.append(Send(Cancelled(cid, _split(timeline, message.played_ms)), urgent=True))
            return
        running: list[int] = []
        for job in ctx.jobs():
            self._jobs.pop(job.spec.job_id, None)
            _leave_backlog(ctx, job)
            if job.state is not JobState.QUEUED:
                self._in_flight -= 1
            if job.state is JobState.RUNNING:
                running.append(job.spec.job_id)
        ctx.pending.clear()
        self._dispatch_queue = deque(j for j in self._dispatch_queue if j.spec.context != cid)
        out.append(DropStream(ctx.stream))
        if running:
            out.append(CancelJobs(tuple(running)))
        split = _split(ctx.timeline, message.played_ms)
        out.append(Send(Cancelled(cid, split, ctx.metrics.record(now_s)), urgent=True))

    # --- ordering and dispatch ------------------------------------------------------------

    def _enqueue(self, ctx: ContextStream, segments: list[Segment], now_s: float) -> None:
        for job in ctx.make_jobs(segments, now_s, self._next_job):
            self._jobs[job.spec.job_id] = job
            self._dispatch_queue.append(job)
            self._next_job += 1

    def _dispatch(self, out: list[Output], now_s: float) -> None:
        cfg = self.config
        while self._in_flight < cfg.max_jobs_in_flight and self._dispatch_queue:
            job = next((j for j in self._dispatch_queue if j.spec.first), self._dispatch_queue[0])
            self._dispatch_queue.remove(job)
            job.state = JobState.RUNNING
            self._in_flight += 1
            ctx = self._contexts[job.spec.context]
            start_by_s = ctx.start_by_s(job, cfg.speed, cfg.playback_low_water_ms, now_s)
            carried = NO_CONTEXT
            if cfg.word_timings:
                slack_ms = self._carry_slack_ms(job, start_by_s, now_s)
                speed = ctx.engine_speed(cfg.speed)
                carried = affordable(ctx.carried(job, cfg.carry), speed, slack_ms)
            job.spec = dataclasses.replace(
                job.spec,
                start_by_s=start_by_s,
                left_context=carried.left,
                right_context=carried.right,
            )
            if ctx.backlog is not None:
                spec = job.spec
                carried_chars = len(carried.left) + len(carried.right)
                chars = spec.segment.end - spec.segment.start + carried_chars
                forecast_ms = ctx.engine_speed(cfg.speed).synthesis_ms(chars)
                ctx.backlog.add((ctx, spec.job_id), ctx, start_by_s, forecast_ms, now_s)
            out.append(Synthesize(job.spec))

    def _carry_slack_ms(self, job: Job, start_by_s: float, now_s: float) -> float:
        """Engine time ``job`` may spend on context words: a first segment, what its
        budget leaves. A later one, while its context is the only one speaking: as much
        as it has (its work makes no one else wait; measured with one stream at a time:
        no underrun from it where the text keeps up, and a listener already waiting for
        a typist's next word waits a few ms more for speech that sounds right). With
        others speaking: only what its listener's deadline leaves after the others' work
        due before (measured: 4 clients at once went from 23 to 221-296 ms of underrun p95
        when more was allowed), and nothing while the engine's load is above
        ``carry.max_load`` with others' work waiting."""
        cfg = self.config
        if job.spec.first:
            chars = job.spec.segment.end - job.spec.segment.start
            return cfg.first_segment_budget_ms - cfg.speed.synthesis_ms(chars)
        capacity = cfg.capacity
        if capacity is None or capacity.active <= 1:
            return math.inf
        ctx = self._contexts[job.spec.context]
        if capacity.load > cfg.carry.max_load and capacity.backlog.others(ctx):
            return 0.0
        return 1000.0 * (start_by_s - now_s) - ctx.wait_ms(start_by_s)

    def _after_job(self, ctx: ContextStream, now_s: float) -> list[Output]:
        out: list[Output] = []
        self._release(ctx, now_s, out)
        self._dispatch(out, now_s)
        return out

    def _release(self, ctx: ContextStream, now_s: float, out: list[Output]) -> None:
        for job in ctx.release(now_s, self.config.immediate_send, out):
            self._jobs.pop(job.spec.job_id, None)
            self._in_flight -= 1
        if not ctx.pending and ctx.state is ContextState.ENDED:
            self._forget(ctx.id)
            self._finished.remember(ctx.id, ctx.stream, ctx.timeline)


def _leave_backlog(ctx: ContextStream, job: Job, now_s: float | None = None) -> None:
    """The job's engine work is over (finished, failed, cancelled or abandoned)."""
    if ctx.backlog is not None:
        ctx.backlog.remove((ctx, job.spec.job_id), now_s)


def _split(timeline: SpokenTimeline | None, played_ms: float | None) -> dict[str, Any]:
    if timeline is None or played_ms is None:
        return {}
    return timeline.split_at(played_ms)
