"""Sans-I/O session: one per connection, no sockets, no tasks, no clock of its own.

Feed it what happened (``receive_text_frame``, ``receive_binary_frame``, ``poll``,
``job_audio``, ``job_finished``, ``job_failed``) with the current monotonic time; each call
returns the ``Output``s the driver must carry out, in order:

* ``Send``: a JSON message. ``urgent`` ones (errors about input, ``pong``,
  ``cancelled``) may jump ahead of queued audio; the others keep their order with audio.
* ``Audio``: PCM of one segment of one stream, released strictly in text order.
* ``OpenStream`` / ``CloseStream``: a context's audio stream begins / ends (in order).
* ``DropStream``: a cancelled stream; nothing more of it may be sent, starting now.
* ``Synthesize`` / ``CancelJobs``: engine work to start / stop.
* ``Close``: close the socket with this code.

Ordering: every context keeps a queue of its segments' jobs and of markers (``flushed``,
``done``); the head is released as its audio arrives (or when it completes, without
``immediate_send``), later jobs wait their turn however early they finish. At most
``max_jobs_in_flight`` jobs per connection are dispatched and not yet released, which
bounds the audio held for reordering.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from speakstream import PROTOCOL_VERSION
from speakstream.protocol.errors import CloseCode, ErrorCode, ProtocolError
from speakstream.protocol.messages import (
    CancelMessage,
    EndMessage,
    FlushMessage,
    PingMessage,
    StartMessage,
    TextMessage,
    error_message,
    parse_client_message,
    server_message,
)
from speakstream.protocol.metrics import ContextMetrics
from speakstream.protocol.outputs import (
    Audio,
    CancelJobs,
    Close,
    CloseStream,
    DropStream,
    OpenStream,
    Output,
    Send,
    SessionConfig,
    SynthesisJob,
    Synthesize,
    native_rate_only,
)
from speakstream.protocol.timeline import SpokenTimeline, Timed
from speakstream.segmenter import Segment, Segmenter, boundary_after

__all__ = [
    "Audio",
    "CancelJobs",
    "Close",
    "CloseStream",
    "DropStream",
    "OpenStream",
    "Output",
    "Send",
    "Session",
    "SessionConfig",
    "SynthesisJob",
    "Synthesize",
    "native_rate_only",
]

_RECENT_STREAMS = 256


@dataclass(slots=True)
class _Job:
    spec: SynthesisJob
    dispatched: bool = False
    done: bool = False
    error: ProtocolError | None = None
    chunks: list[tuple[Any, float, Sequence[Timed]]] = field(default_factory=list)  # unreleased
    queue_ms: float | None = None
    first_chunk_ms: float | None = None
    announced: bool = False


@dataclass(frozen=True, slots=True)
class _Marker:
    kind: str  # "flushed" or "done"


@dataclass(slots=True)
class _Context:
    id: str
    stream: int
    voice: str
    encoding: str
    sample_rate_hz: int
    speed: float
    volume: float
    segmenter: Segmenter
    metrics: ContextMetrics
    alignment: bool = False
    timeline: SpokenTimeline = field(default_factory=SpokenTimeline)
    pending: deque[_Job | _Marker] = field(default_factory=deque)
    unspoken_chars: int = 0  # received, not yet released as audio
    ending: bool = False
    last_boundary: str = "word"  # what ended the last segment cut


class Session:
    def __init__(self, config: SessionConfig) -> None:
        self.config = config
        self._contexts: dict[str, _Context] = {}
        self._recent: OrderedDict[str, int] = OrderedDict()  # finished context -> its stream
        # finished contexts whose audio a client may still be playing: for cancel's split
        self._finished: OrderedDict[str, SpokenTimeline] = OrderedDict()
        self._jobs: dict[int, _Job] = {}
        self._dispatch_queue: deque[_Job] = deque()
        self._in_flight = 0
        self._next_stream = 1
        self._next_job = 1
        self._errors = 0
        self.closed = False

    # --- inputs ------------------------------------------------------------------------

    def start(self) -> list[Output]:
        """The ``ready`` greeting."""
        cfg = self.config
        ready = server_message(
            "ready",
            protocol=PROTOCOL_VERSION,
            settings={
                "voice": cfg.default_voice,
                "encoding": cfg.default_encoding,
                "sample_rate_hz": cfg.voices[cfg.default_voice],
                "min_text_length": cfg.policy.min_text_length,
                "chunk_size": cfg.policy.chunk_size,
                "streaming_threshold_ms": round(cfg.policy.streaming_threshold_s * 1000),
                "preemptive_generation": cfg.policy.preemptive_generation,
                "immediate_send": cfg.immediate_send,
            },
            limits={
                "max_contexts": cfg.max_contexts,
                "max_text_chars": cfg.max_text_chars,
                "max_buffered_chars": cfg.max_buffered_chars,
            },
            **cfg.ready_info,
        )
        return [Send(ready)]

    def receive_text_frame(self, data: str, now_s: float) -> list[Output]:
        out: list[Output] = []
        try:
            message = parse_client_message(data)
            if isinstance(message, TextMessage):
                self._on_text(message, now_s, out)
            elif isinstance(message, StartMessage):
                self._on_start(message, now_s, out)
            elif isinstance(message, FlushMessage):
                self._on_flush(message.context, now_s, out)
            elif isinstance(message, EndMessage):
                self._on_end(message.context, now_s, out)
            elif isinstance(message, CancelMessage):
                self._on_cancel(message, out)
            elif isinstance(message, PingMessage):
                fields = {} if message.id is None else {"id": message.id}
                out.append(Send(server_message("pong", **fields), urgent=True))
        except ProtocolError as error:
            self._on_error(error, out)
        self._dispatch(out)
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
        """Time-driven cuts: idle flushes, and whole words when the listener would
        otherwise run out of audio."""
        out: list[Output] = []
        for ctx in list(self._contexts.values()):
            self._enqueue(ctx, ctx.segmenter.poll(now_s), now_s)
            deadline = self._playback_deadline_s(ctx)
            if deadline is not None and now_s >= deadline:
                self._enqueue(ctx, ctx.segmenter.flush_words(), now_s)
        self._dispatch(out)
        return out

    def next_deadline_s(self) -> float | None:
        deadlines = [
            d
            for ctx in self._contexts.values()
            for d in (ctx.segmenter.idle_deadline_s(), self._playback_deadline_s(ctx))
            if d is not None
        ]
        return min(deadlines, default=None)

    def _playback_deadline_s(self, ctx: _Context) -> float | None:
        """When the audio released so far, played from its first byte on, has only
        ``playback_low_water_ms`` left: past it, whole words buffered are cut at once
        rather than waiting for the segment's target length or sentence end. Only while
        nothing of the context is being synthesized (that audio is on its way)."""
        start_s = ctx.metrics.first_audio_s
        low_water_ms = self.config.playback_low_water_ms
        if start_s is None or not low_water_ms or not ctx.segmenter.has_complete_words:
            return None
        if any(isinstance(item, _Job) for item in ctx.pending):
            return None
        return start_s + (ctx.timeline.audio_ms - low_water_ms) / 1000.0

    def job_timing(self, job_id: int, queue_ms: float, first_chunk_ms: float) -> None:
        """How long the job waited for a worker and how long the engine took to first audio."""
        job = self._jobs.get(job_id)
        if job is not None and job.first_chunk_ms is None:
            job.queue_ms = queue_ms
            job.first_chunk_ms = first_chunk_ms

    def job_audio(
        self,
        job_id: int,
        pcm: Any,
        duration_ms: float,
        now_s: float,
        words: Sequence[Timed] = (),
    ) -> list[Output]:
        """A chunk of a job's audio; ``words``: its word timings, if the engine has them."""
        out: list[Output] = []
        job = self._jobs.get(job_id)
        if job is None or job.done:
            return out  # cancelled, timed out or finished: late audio is discarded
        ctx = self._contexts[job.spec.context]
        job.chunks.append((pcm, duration_ms, words))
        ctx.metrics.audio_ms += duration_ms
        self._release(ctx, now_s, out)
        return out

    def job_finished(
        self, job_id: int, synthesis_s: float, queue_s: float, now_s: float
    ) -> list[Output]:
        out: list[Output] = []
        job = self._jobs.get(job_id)
        if job is None or job.done:
            return out
        ctx = self._contexts[job.spec.context]
        job.done = True
        ctx.metrics.synthesis_ms += 1000.0 * synthesis_s
        ctx.metrics.queue_ms += 1000.0 * queue_s
        self._release(ctx, now_s, out)
        self._dispatch(out)
        return out

    def job_failed(self, job_id: int, error: ProtocolError, now_s: float) -> list[Output]:
        out: list[Output] = []
        job = self._jobs.get(job_id)
        if job is None or job.done:
            return out
        ctx = self._contexts[job.spec.context]
        job.done = True
        job.error = error
        self._release(ctx, now_s, out)
        self._dispatch(out)
        return out

    def close(self) -> list[Output]:
        """The connection is gone: every job still known must stop."""
        self.closed = True
        ids = tuple(job_id for job_id, job in self._jobs.items() if job.dispatched)
        self._jobs.clear()
        self._dispatch_queue.clear()
        self._contexts.clear()
        return [CancelJobs(ids)] if ids else []

    # --- introspection (tests, metrics) --------------------------------------------------

    @property
    def active_contexts(self) -> int:
        return len(self._contexts)

    @property
    def jobs_in_flight(self) -> int:
        return self._in_flight

    # --- message handlers -----------------------------------------------------------------

    def _on_error(self, error: ProtocolError, out: list[Output]) -> None:
        self._errors += 1
        out.append(Send(error_message(error), urgent=True))
        if self._errors > self.config.max_errors and not self.closed:
            self.closed = True
            limit = ProtocolError(
                ErrorCode.TOO_MANY_ERRORS,
                f"more than {self.config.max_errors} protocol errors; closing the connection",
            )
            out.append(Send(error_message(limit), urgent=True))
            out.append(Close(CloseCode.POLICY_VIOLATION, "too many protocol errors"))

    def _new_context(self, message: StartMessage, now_s: float, out: list[Output]) -> _Context:
        cfg = self.config
        cid = message.context
        if len(self._contexts) >= cfg.max_contexts:
            raise ProtocolError(
                ErrorCode.TOO_MANY_CONTEXTS,
                f"at most {cfg.max_contexts} contexts may be open on one connection; "
                "end or cancel one first",
                cid,
            )
        voice = message.voice or cfg.default_voice
        if voice not in cfg.voices:
            raise ProtocolError(
                ErrorCode.UNKNOWN_VOICE,
                f"unknown voice {voice!r}; available: {', '.join(sorted(cfg.voices))}",
                cid,
            )
        encoding = message.encoding or cfg.default_encoding
        if encoding not in cfg.encodings:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_ENCODING,
                f"unsupported encoding {encoding!r}; supported: {', '.join(sorted(cfg.encodings))}",
                cid,
            )
        if message.alignment and not cfg.word_timings:
            raise ProtocolError(
                ErrorCode.ALIGNMENT_UNSUPPORTED,
                "this engine reports no word timings ('ready' says capabilities.alignment)",
                cid,
            )
        native_hz = cfg.voices[voice]
        try:
            rate_hz = cfg.resolve_rate_hz(encoding, message.sample_rate_hz, native_hz)
        except ProtocolError as error:
            raise ProtocolError(error.code, error.message, cid) from None
        policy = cfg.policy
        overrides: dict[str, Any] = {}
        if message.min_text_length is not None:
            overrides["min_text_length"] = message.min_text_length
        if message.chunk_size is not None:
            overrides["chunk_size"] = message.chunk_size
            overrides["max_chunk_size"] = max(policy.max_chunk_size, message.chunk_size)
            overrides["max_segment_chars"] = max(
                policy.max_segment_chars, 2 * overrides["max_chunk_size"]
            )
        if message.streaming_threshold_ms is not None:
            overrides["streaming_threshold_s"] = message.streaming_threshold_ms / 1000.0
        if message.preemptive_generation is not None:
            overrides["preemptive_generation"] = message.preemptive_generation
        if overrides:
            policy = dataclasses.replace(policy, **overrides)
        ctx = _Context(
            id=cid,
            stream=self._next_stream,
            voice=voice,
            encoding=encoding,
            sample_rate_hz=rate_hz,
            speed=message.speed or 1.0,
            volume=1.0 if message.volume is None else message.volume,
            segmenter=Segmenter(policy),
            metrics=ContextMetrics(created_s=now_s),
            alignment=bool(message.alignment),
        )
        self._next_stream += 1
        self._contexts[cid] = ctx
        self._recent.pop(cid, None)
        self._finished.pop(cid, None)
        out.append(OpenStream(ctx.stream, cid, encoding, rate_hz, native_hz))
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
        elif ctx.ending:
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
        if not message.text:
            return
        if ctx.metrics.first_text_s is None:
            ctx.metrics.first_text_s = now_s
        ctx.metrics.characters += len(message.text)
        ctx.unspoken_chars += len(message.text)
        ctx.timeline.add_text(message.text)
        self._enqueue(ctx, ctx.segmenter.push(message.text, now_s), now_s)

    def _existing(self, cid: str) -> _Context:
        ctx = self._contexts.get(cid)
        if ctx is None:
            raise ProtocolError(ErrorCode.UNKNOWN_CONTEXT, f"no open context {cid!r}", cid)
        return ctx

    def _on_flush(self, cid: str, now_s: float, out: list[Output]) -> None:
        ctx = self._existing(cid)
        self._enqueue(ctx, ctx.segmenter.flush(), now_s)
        ctx.pending.append(_Marker("flushed"))
        self._release(ctx, now_s, out)

    def _on_end(self, cid: str, now_s: float, out: list[Output]) -> None:
        ctx = self._existing(cid)
        if ctx.ending:
            raise ProtocolError(ErrorCode.CONTEXT_ENDED, f"context {cid!r} has already ended", cid)
        self._enqueue(ctx, ctx.segmenter.flush(), now_s)
        ctx.ending = True
        ctx.pending.append(_Marker("done"))
        self._release(ctx, now_s, out)

    def _on_cancel(self, message: CancelMessage, out: list[Output]) -> None:
        cid = message.context
        ctx = self._contexts.pop(cid, None)
        if ctx is None:
            stream = self._recent.get(cid)
            if stream is None:
                raise ProtocolError(ErrorCode.UNKNOWN_CONTEXT, f"no context {cid!r} to cancel", cid)
            out.append(DropStream(stream))
            split = self._split(self._finished.get(cid), message.played_ms)
            out.append(Send(server_message("cancelled", context=cid, **split), urgent=True))
            return
        dispatched: list[int] = []
        for item in ctx.pending:
            if isinstance(item, _Job):
                self._jobs.pop(item.spec.job_id, None)
                if item.dispatched:
                    self._in_flight -= 1
                    if not item.done:
                        dispatched.append(item.spec.job_id)
        ctx.pending.clear()
        self._dispatch_queue = deque(j for j in self._dispatch_queue if j.spec.context != cid)
        self._remember(cid, ctx.stream)
        out.append(DropStream(ctx.stream))
        if dispatched:
            out.append(CancelJobs(tuple(dispatched)))
        split = self._split(ctx.timeline, message.played_ms)
        out.append(Send(server_message("cancelled", context=cid, **split), urgent=True))

    @staticmethod
    def _split(timeline: SpokenTimeline | None, played_ms: float | None) -> dict[str, Any]:
        if timeline is None or played_ms is None:
            return {}
        return timeline.split_at(played_ms)

    # --- ordering and dispatch ------------------------------------------------------------

    def _remember(self, cid: str, stream: int) -> None:
        self._recent[cid] = stream
        self._recent.move_to_end(cid)
        while len(self._recent) > _RECENT_STREAMS:
            self._recent.popitem(last=False)

    def _enqueue(self, ctx: _Context, segments: list[Segment], now_s: float) -> None:
        for segment in segments:
            if ctx.metrics.first_segment_s is None:
                ctx.metrics.first_segment_s = now_s
            ctx.metrics.segments += 1
            spec = SynthesisJob(
                job_id=self._next_job,
                context=ctx.id,
                stream=ctx.stream,
                segment=segment,
                voice=ctx.voice,
                speed=ctx.speed,
                volume=ctx.volume,
                pause_before="word" if segment.index == 0 else ctx.last_boundary,
                first=segment.index == 0,
            )
            ctx.last_boundary = boundary_after(segment.text)
            self._next_job += 1
            job = _Job(spec)
            self._jobs[spec.job_id] = job
            ctx.pending.append(job)
            self._dispatch_queue.append(job)

    def _dispatch(self, out: list[Output]) -> None:
        while self._in_flight < self.config.max_jobs_in_flight and self._dispatch_queue:
            job = next((j for j in self._dispatch_queue if j.spec.first), self._dispatch_queue[0])
            self._dispatch_queue.remove(job)
            job.dispatched = True
            self._in_flight += 1
            out.append(Synthesize(job.spec))

    def _release(self, ctx: _Context, now_s: float, out: list[Output]) -> None:
        while ctx.pending:
            head = ctx.pending[0]
            if isinstance(head, _Marker):
                ctx.pending.popleft()
                if head.kind == "flushed":
                    out.append(Send(server_message("flushed", context=ctx.id), ctx.stream))
                else:
                    self._finish(ctx, now_s, out)
                    return
                continue
            releasable = head.done or (self.config.immediate_send and bool(head.chunks))
            if not releasable:
                return
            if not head.announced:
                head.announced = True
                out.append(Send(self._segment_event(ctx, head), ctx.stream))
            if head.chunks:
                if ctx.metrics.first_audio_s is None:
                    ctx.metrics.first_audio_s = now_s
                seg = head.spec.segment
                for pcm, duration_ms, words in head.chunks:
                    spoken = ctx.timeline.add_audio(seg.start, seg.end, duration_ms, words)
                    if ctx.alignment and spoken:
                        alignment = server_message(
                            "alignment",
                            context=ctx.id,
                            seq=seg.index,
                            words=spoken,
                            chars=SpokenTimeline.characters(spoken),
                        )
                        out.append(Send(alignment, ctx.stream))
                    out.append(Audio(ctx.stream, seg.index, pcm))
                head.chunks.clear()
            if not head.done:
                return
            if head.error is not None:
                failure = error_message(head.error) | {"segment": head.spec.segment.index}
                out.append(Send(failure, ctx.stream))
            ctx.pending.popleft()
            self._jobs.pop(head.spec.job_id, None)
            self._in_flight -= 1
            seg = head.spec.segment
            ctx.unspoken_chars -= seg.end - seg.start

    @staticmethod
    def _segment_event(ctx: _Context, job: _Job) -> dict[str, Any]:
        seg = job.spec.segment
        event = server_message(
            "segment",
            context=ctx.id,
            stream=ctx.stream,
            seq=seg.index,
            text=seg.text,
            start=seg.start,
            end=seg.end,
        )
        if job.first_chunk_ms is not None and job.queue_ms is not None:
            event["queue_ms"] = round(job.queue_ms, 3)
            event["first_chunk_ms"] = round(job.first_chunk_ms, 3)
        return event

    def _finish(self, ctx: _Context, now_s: float, out: list[Output]) -> None:
        out.append(CloseStream(ctx.stream))
        done = server_message("done", context=ctx.id, metrics=ctx.metrics.record(now_s))
        out.append(Send(done, ctx.stream))
        del self._contexts[ctx.id]
        self._remember(ctx.id, ctx.stream)
        self._finished[ctx.id] = ctx.timeline
        self._finished.move_to_end(ctx.id)
        while len(self._finished) > self.config.max_contexts:
            self._finished.popitem(last=False)
