"""One context's stream (sans-I/O): its text, its segments' jobs, and their ordered release.

A ``ContextStream`` turns the context's text into synthesis jobs (through its segmenter)
and releases what the jobs produce strictly in text order: its ``pending`` queue holds
the jobs and the markers (``flushed``, ``done``) in the order they were made; the head is
released as its audio arrives (or once it completes, without ``immediate_send``), later
jobs wait their turn however early they finish. It keeps the context's timeline (word
timings, barge-in split) and metrics, and knows when its listener is about to run out of
audio (``playback_deadline_s``).

The stream never dispatches: new jobs are returned to the session, which owns the
per-connection in-flight limit and the dispatch order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any

from speakstream.protocol.backlog import Backlog
from speakstream.protocol.carry import (
    NO_CONTEXT,
    Carried,
    CarryPolicy,
    left_context,
    right_context,
)
from speakstream.protocol.errors import ClientVisibleError, ErrorCode, ProtocolError
from speakstream.protocol.listener import EngineSpeed, Listener, OnTheWay
from speakstream.protocol.messages import StartMessage
from speakstream.protocol.metrics import ContextMetrics
from speakstream.protocol.options import ENGINE_OPTIONS
from speakstream.protocol.outputs import (
    Audio,
    CloseStream,
    Output,
    Send,
    SessionConfig,
    SynthesisJob,
)
from speakstream.protocol.server_messages import (
    Alignment,
    Done,
    ErrorMessage,
    Flushed,
    SegmentEvent,
)
from speakstream.protocol.timeline import SpokenTimeline, Timed
from speakstream.segmenter import (
    Boundary,
    Segment,
    Segmenter,
    SegmentReason,
    boundary_after,
)

# cut before the text said it was complete: more text is expected right after
_CUT_FOR_THE_LISTENER = frozenset(
    {SegmentReason.BOUNDARY, SegmentReason.PLAYBACK, SegmentReason.IDLE}
)


class JobState(Enum):
    QUEUED = auto()  # made, not yet given to the engine
    RUNNING = auto()  # with the engine
    FINISHED = auto()  # the engine is done; what is left waits for its turn
    FAILED = auto()  # the engine failed; the error waits for its turn


class ContextState(Enum):
    OPEN = auto()  # takes text
    ENDED = auto()  # ``end`` received: finishing what it has, then ``done``


@dataclass(frozen=True, slots=True)
class JobTiming:
    queue_ms: float  # waiting for a worker
    first_chunk_ms: float  # engine time to its first audio


@dataclass(slots=True)
class Job:
    spec: SynthesisJob  # (its start_by_s is set when it is dispatched)
    state: JobState = JobState.QUEUED
    error: ClientVisibleError | None = None
    chunks: list[tuple[Any, float, Sequence[Timed]]] = field(default_factory=list)  # unreleased
    timing: JobTiming | None = None
    audio_ms: float = 0.0  # made so far
    shared: bool = False  # its synthesis started while another job ran
    cut_s: float = 0.0  # when its segment was cut (its text was there to synthesize)

    @property
    def done(self) -> bool:
        return self.state in (JobState.FINISHED, JobState.FAILED)


@dataclass(frozen=True, slots=True)
class _Marker:
    message: Flushed | None  # None: the end of the context (``done``)


@dataclass(frozen=True, slots=True)
class StreamFormat:
    voice: str
    encoding: str
    sample_rate_hz: int
    speed: float = 1.0
    volume: float = 1.0
    alignment: bool = False
    bit_rate_kbps: int | None = None  # a compressed encoding's; None: the codec's default
    # options only some engines have (``ENGINE_OPTIONS``), as asked: (name, value)
    engine_options: tuple[tuple[str, float], ...] = ()


def _engine_options(message: StartMessage, cfg: SessionConfig) -> tuple[tuple[str, float], ...]:
    asked = [(o.name, message.number_option(o.name)) for o in ENGINE_OPTIONS]
    chosen = tuple((name, value) for name, value in asked if value is not None)
    for name, _ in chosen:
        if name not in cfg.engine_options:
            has = ", ".join(sorted(cfg.engine_options)) or "none"
            raise ProtocolError(
                ErrorCode.INVALID_MESSAGE,
                f"option {name!r} needs an engine that has it; this server's engine has: {has}",
                message.context,
            )
    return chosen


def stream_format(message: StartMessage, cfg: SessionConfig) -> tuple[StreamFormat, int]:
    """The format a ``start`` asks for, checked against what the server has, and the
    voice's own rate."""
    cid = message.context
    voice = message.text_option("voice") or cfg.default_voice
    if voice not in cfg.voices:
        raise ProtocolError(
            ErrorCode.UNKNOWN_VOICE,
            f"unknown voice {voice!r}; available: {', '.join(sorted(cfg.voices))}",
            cid,
        )
    encoding = message.text_option("encoding") or cfg.default_encoding
    if encoding not in cfg.encodings:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_ENCODING,
            f"unsupported encoding {encoding!r}; supported: {', '.join(sorted(cfg.encodings))}",
            cid,
        )
    alignment = message.options.get("alignment") is True
    if alignment and not cfg.word_timings:
        raise ProtocolError(
            ErrorCode.ALIGNMENT_UNSUPPORTED,
            "this engine reports no word timings ('ready' says capabilities.alignment)",
            cid,
        )
    native_hz = cfg.voices[voice]
    requested_hz = message.number_option("sample_rate_hz")
    bit_rate = message.number_option("bit_rate_kbps")
    bit_rate_kbps = None if bit_rate is None else int(bit_rate)
    try:
        rate_hz = cfg.resolve_rate_hz(
            encoding, None if requested_hz is None else int(requested_hz), native_hz
        )
        if bit_rate_kbps is not None:
            cfg.check_bit_rate(encoding, rate_hz, bit_rate_kbps)
    except ClientVisibleError as error:
        raise ProtocolError(error.code, error.message, cid) from None
    speed = message.number_option("speed")
    volume = message.number_option("volume")
    fmt = StreamFormat(
        voice=voice,
        encoding=encoding,
        sample_rate_hz=rate_hz,
        speed=1.0 if speed is None else speed,
        volume=1.0 if volume is None else volume,
        alignment=alignment,
        bit_rate_kbps=bit_rate_kbps,
        engine_options=_engine_options(message, cfg),
    )
    return fmt, native_hz


class ContextStream:
    def __init__(
        self,
        context: str,
        stream: int,
        fmt: StreamFormat,
        segmenter: Segmenter,
        now_s: float,
        backlog: Backlog | None = None,
    ) -> None:
        self.id = context
        self.backlog = backlog  # the engine's, server-wide (None: the engine waits for no one)
        self.stream = stream
        self.format = fmt
        self.segmenter = segmenter
        self.metrics = ContextMetrics(created_s=now_s)
        self.timeline = SpokenTimeline()
        self.listener = Listener()  # plays what is released, from its first byte
        self.state = ContextState.OPEN
        self.pending: deque[Job | _Marker] = deque()
        self.unspoken_chars = 0  # received, not yet released as audio
        self._head_announced = False  # the head job's ``segment`` event has been sent
        self._last_announced: int | None = None  # seq of the last ``segment`` event sent
        self._last_boundary = Boundary.WORD  # what ended the last segment cut

    # --- text in, jobs out -----------------------------------------------------------------

    def add_text(
        self, text: str, now_s: float, speed: EngineSpeed | None = None, margin_ms: float = 0.0
    ) -> list[Segment]:
        """Take ``text``; the segments it completes. With ``speed``, a segment after the
        first grows no longer than its listener can wait for (``limit_chars``)."""
        if self.metrics.first_text_s is None:
            self.metrics.first_text_s = now_s
        self.metrics.characters += len(text)
        self.unspoken_chars += len(text)
        self.timeline.add_text(text)
        if speed is None:
            return self.segmenter.push(text, now_s)
        segmenter = self.segmenter
        segmenter.limit_chars = self.limit_chars(speed, margin_ms, now_s)
        # under load, a limit lowered by others' work also cuts the words already here
        # (alone, the cut deadline takes care of them, in fewer pieces)
        cut = segmenter.cut_to_limit() if self.others_speaking else []
        return cut + segmenter.push(text, now_s)

    def make_jobs(self, segments: list[Segment], now_s: float, next_id: int) -> list[Job]:
        """Jobs for ``segments`` (ids from ``next_id`` on), queued for release in order."""
        jobs: list[Job] = []
        for segment in segments:
            if self.metrics.first_segment_s is None:
                self.metrics.first_segment_s = now_s
            self.metrics.segments += 1
            first = segment.index == 0
            spec = SynthesisJob(
                job_id=next_id + len(jobs),
                context=self.id,
                stream=self.stream,
                segment=segment,
                voice=self.format.voice,
                speed=self.format.speed,
                engine_options=self.format.engine_options,
                volume=self.format.volume,
                pause_before=Boundary.WORD if first else self._last_boundary,
                first=first,
            )
            self._last_boundary = boundary_after(segment.text)
            job = Job(spec, cut_s=now_s)
            self.pending.append(job)
            jobs.append(job)
        return jobs

    def mark_flushed(self) -> None:
        self.pending.append(_Marker(Flushed(self.id)))

    def mark_end(self) -> None:
        self.state = ContextState.ENDED
        self.pending.append(_Marker(None))

    def jobs(self) -> list[Job]:
        return [item for item in self.pending if isinstance(item, Job)]

    # --- the listener ---------------------------------------------------------------------

    def start_by_s(self, job: Job, speed: EngineSpeed, margin_ms: float, now_s: float) -> float:
        """When the engine must start ``job`` at the latest for its audio to come
        ``margin_ms`` before the listener runs dry (the listener starts when the first
        audio comes, forecast if it has not yet). A first segment: now."""
        if job.spec.first:
            return now_s
        speed = self.engine_speed(speed)
        ahead = self._on_the_way(speed, before=job)
        listener = self.listener
        if listener.first_audio_s is None:  # forecast: once the segments ahead are made
            listener = Listener(now_s + ahead.synthesis_ms / 1000.0)
        dry_s = listener.runs_dry_s(ahead.audio_ms)
        chars = job.spec.segment.end - job.spec.segment.start
        needed_ms = speed.synthesis_ms(chars) + margin_ms
        return (dry_s if dry_s is not None else now_s) - needed_ms / 1000.0

    def carried(self, job: Job, policy: CarryPolicy) -> Carried:
        """The words around ``job``'s segment the engine should hear (as they stand now)."""
        if not policy.enabled:
            return NO_CONTEXT
        segment = job.spec.segment
        reach = policy.max_chars_per_side + 1
        window_start = max(0, segment.start - reach)
        left = left_context(
            self.timeline.text_between(window_start, segment.start),
            policy,
            starts_text=window_start == 0,
        )
        right = right_context(
            segment.text,
            self.timeline.text_between(segment.end, segment.end + reach),
            policy,
            text_complete=self.state is ContextState.ENDED,
            more_expected=segment.reason in _CUT_FOR_THE_LISTENER,
        )
        return Carried(left, right)

    def _on_the_way(self, speed: EngineSpeed, before: Job | None = None) -> OnTheWay:
        audio_ms = synthesis_ms = 0.0
        for job in self.jobs():
            if job is before:
                break
            unreleased_ms = sum(duration_ms for _, duration_ms, _ in job.chunks)
            if job.done:
                audio_ms += unreleased_ms
                continue
            chars = job.spec.segment.end - job.spec.segment.start
            released_ms = job.audio_ms - unreleased_ms
            audio_ms += max(speed.audio_ms_per_char * chars, job.audio_ms) - released_ms
            synthesis_ms += speed.synthesis_ms(chars)
        return OnTheWay(audio_ms, synthesis_ms)

    def engine_speed(self, speed: EngineSpeed) -> EngineSpeed:
        """``speed``'s model for this context's next segments: the loaded one while other
        contexts have work in the engine pool."""
        return speed.for_load(self.others_speaking)

    @property
    def others_speaking(self) -> bool:
        """Whether other contexts have work in the engine pool."""
        return self.backlog is not None and self.backlog.others(self)

    def wait_ms(self, start_by_s: float) -> float:
        """How long a job of this context due by ``start_by_s`` would wait for a worker
        behind other contexts' work (the backlog's forecast)."""
        return 0.0 if self.backlog is None else self.backlog.wait_ms(start_by_s, self)

    def cut_deadline_s(self, speed: EngineSpeed, margin_ms: float) -> float | None:
        """Natural cuts: when the whole words buffered must go to the engine so that their
        audio arrives ``margin_ms`` before the listener runs dry; None while there are
        none, or before the listener has its first audio."""
        chars = self.segmenter.complete_chars
        if not chars:
            return None
        speed = self.engine_speed(speed)
        return self.listener.cut_by_s(chars, speed, self._on_the_way(speed), margin_ms)

    def _phrase_cut_s(self, speed: EngineSpeed, margin_ms: float) -> float | None:
        """When the words buffered are cut: at the cut deadline, if they make a phrase
        (``policy.phrase_words`` whole words, or a clause end); with fewer, once the input
        has also been silent for ``streaming_threshold_s`` (the writer paused), or when
        more words arrive. A listener that has run dry hears a pair of words a word later
        rather than each word alone, clipped like a sentence of one word."""
        cut_s = self.cut_deadline_s(speed, margin_ms)
        segmenter = self.segmenter
        if cut_s is None or segmenter.phrase_buffered:
            return cut_s
        if segmenter.has_words(segmenter.policy.phrase_words):
            return cut_s
        # the segmenter's idle deadline: ``streaming_threshold_s`` after the last input
        silent_s = segmenter.idle_deadline_s()
        return cut_s if silent_s is None else max(cut_s, silent_s)

    def partial_deadline_s(self, speed: EngineSpeed, margin_ms: float) -> float | None:
        """Natural cuts: a word being typed goes once input has been silent for the
        partial-word timeout and the listener is about to run dry."""
        silent_s = self.segmenter.idle_deadline_s()
        if silent_s is None or self.segmenter.complete_chars:
            return None
        speed = self.engine_speed(speed)
        dry_s = self.listener.cut_by_s(
            self.segmenter.buffered_chars, speed, self._on_the_way(speed), margin_ms
        )
        return None if dry_s is None else max(silent_s, dry_s)

    def limit_chars(self, speed: EngineSpeed, margin_ms: float, now_s: float) -> int | None:
        """Natural cuts past the first segment: the longest segment the engine can make,
        after this context's segments on their way and the others' work due before, with
        its audio ``margin_ms`` before the listener runs dry; at least
        ``policy.chunk_size`` (under load, segments grow from there as the listener's
        audio builds up; smaller ones cost more engine time per second of audio than they
        save). None: no limit (the first segment, eager cuts, or a context alone whose
        listener waits already).

        The cut deadlines leave the others' work out: a cut made earlier to wait in the
        pool only makes a shorter segment, which costs the engine more per second of
        audio (measured on the virtual clock, ``tests/load_sim.py``)."""
        policy = self.segmenter.policy
        if not policy.natural_cuts or self.segmenter.segments_cut == 0:
            return None
        speed = self.engine_speed(speed)
        ahead = self._on_the_way(speed)
        listener = self.listener
        if listener.first_audio_s is None:  # forecast: once the segments ahead are made
            if not any(isinstance(item, Job) for item in self.pending):
                return None
            listener = Listener(now_s + (ahead.synthesis_ms + self.wait_ms(now_s)) / 1000.0)
        dry_s = listener.runs_dry_s(ahead.audio_ms)
        assert dry_s is not None
        available_ms = (
            1000.0 * (dry_s - now_s) - margin_ms - ahead.synthesis_ms - self.wait_ms(dry_s)
        )
        if available_ms <= 0 and not self.others_speaking:
            return None  # alone and late already: a shorter segment gains a few ms only
        return max(policy.chunk_size, speed.chars_within_ms(available_ms))

    @property
    def listening(self) -> bool:
        """The listener has started (natural cuts are decided by its deadline), or it is
        still waiting for audio that is on its way."""
        return self.metrics.first_audio_s is not None or any(
            isinstance(item, Job) for item in self.pending
        )

    @property
    def natural(self) -> bool:
        """Natural cuts, past the first segment, with a listener to decide them."""
        segmenter = self.segmenter
        return segmenter.policy.natural_cuts and segmenter.segments_cut > 0 and self.listening

    def deadlines(self, speed: EngineSpeed, margin_ms: float) -> list[float]:
        """When ``timed_cuts`` may next have something to cut."""
        if self.natural:
            candidates = (
                self._phrase_cut_s(speed, margin_ms),
                self.partial_deadline_s(speed, margin_ms),
            )
        else:
            candidates = (self.segmenter.idle_deadline_s(), self.playback_deadline_s(margin_ms))
        return [d for d in candidates if d is not None]

    def timed_cuts(self, now_s: float, speed: EngineSpeed, margin_ms: float) -> list[Segment]:
        """The segments time cuts now: natural cuts when the listener needs them; eager
        ones on input silence and when the audio released runs low."""
        if self.natural:
            cut_s = self._phrase_cut_s(speed, margin_ms)
            if cut_s is not None and now_s >= cut_s:
                return self.segmenter.flush_phrase()
            partial_s = self.partial_deadline_s(speed, margin_ms)
            if partial_s is not None and now_s >= partial_s:
                return self.segmenter.flush()
            return []
        segments = self.segmenter.poll(now_s)
        deadline = self.playback_deadline_s(margin_ms)
        if deadline is not None and now_s >= deadline:
            segments += self.segmenter.flush_words()
        return segments

    def playback_deadline_s(self, low_water_ms: float) -> float | None:
        """Eager cuts: when the audio released so far, played from its first byte on, has
        only ``low_water_ms`` left: past it, whole words buffered are cut at once rather
        than waiting for the segment's target length or sentence end. Only while nothing
        of the context is being synthesized (that audio is on its way)."""
        dry_s = self.listener.runs_dry_s()
        if dry_s is None or not low_water_ms or not self.segmenter.has_complete_words:
            return None
        if any(isinstance(item, Job) for item in self.pending):
            return None
        return dry_s - low_water_ms / 1000.0

    # --- release in order -----------------------------------------------------------------

    def release(self, now_s: float, immediate_send: bool, out: list[Output]) -> list[Job]:
        """Release what the head of the queue allows; return the jobs released whole."""
        released: list[Job] = []
        while self.pending:
            head = self.pending[0]
            if isinstance(head, _Marker):
                self.pending.popleft()
                if head.message is None:
                    self._finish(now_s, out)
                    return released
                out.append(Send(head.message, self.stream))
                continue
            if not (head.done or (immediate_send and head.chunks)):
                return released
            if not self._head_announced:
                self._head_announced = True
                self._last_announced = head.spec.segment.index
                out.append(Send(self._segment_event(head), self.stream))
            self._release_audio(head, now_s, out)
            if not head.done:
                return released
            if head.error is not None:
                error = ErrorMessage.of(head.error, segment=head.spec.segment.index)
                out.append(Send(error, self.stream))
            self.pending.popleft()
            self._head_announced = False
            seg = head.spec.segment
            self.unspoken_chars -= seg.end - seg.start
            released.append(head)
        return released

    def _release_audio(self, job: Job, now_s: float, out: list[Output]) -> None:
        if not job.chunks:
            return
        if self.metrics.first_audio_s is None:
            self.metrics.first_audio_s = now_s
        elif stall_ms := self.listener.stall_ms(now_s, job.cut_s):
            self.metrics.stalls += 1
            self.metrics.stall_ms += stall_ms
        seg = job.spec.segment
        for pcm, duration_ms, words in job.chunks:
            self.listener.hear(now_s, duration_ms)
            spoken = self.timeline.add_audio(seg.start, seg.end, duration_ms, words)
            if self.format.alignment and spoken:
                chars = SpokenTimeline.characters(spoken)
                out.append(Send(Alignment(self.id, seg.index, spoken, chars), self.stream))
            out.append(Audio(self.stream, seg.index, pcm))
        job.chunks.clear()

    def _segment_event(self, job: Job) -> SegmentEvent:
        seg = job.spec.segment
        timing = job.timing
        return SegmentEvent(
            context=self.id,
            stream=self.stream,
            seq=seg.index,
            text=seg.text,
            start=seg.start,
            end=seg.end,
            queue_ms=None if timing is None else round(timing.queue_ms, 3),
            first_chunk_ms=None if timing is None else round(timing.first_chunk_ms, 3),
        )

    def _finish(self, now_s: float, out: list[Output]) -> None:
        out.append(CloseStream(self.stream, self._last_announced))
        out.append(Send(Done(self.id, self.metrics.record(now_s)), self.stream))
