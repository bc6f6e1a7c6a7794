"""The one place that synthesizes a segment: engine call, seams, worker pool, errors, clock.

``Synthesizer.run(job)`` yields the segment's shaped audio as it is made (engine chunks
cleaned at the seams: trimmed, faded, paused by punctuation, the context's volume) and
ends with how long the job waited and ran. The first chunk carries the job's timing
(time waiting for a worker, engine time to first audio), on the session's clock
(``time.monotonic``). A job with context words (``left_context``, ``right_context``: see
``protocol/carry.py``) has the engine say them too and keeps only the segment's own audio
(``audio/span.py``). Control characters reach the engine as spaces. Failures become
``SynthesisError``s with their client-visible code: ``synthesis_timeout`` past
``timeout_s``, ``synthesis_failed`` for an engine exception
(logged here, with its traceback, once). Closing the iterator stops the job: its worker
thread stops at the next chunk, or at once where the engine's stream has ``cancel()``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from dataclasses import dataclass

from speakstream.audio.pcm import PcmChunk
from speakstream.audio.seams import SeamPolicy, shape_chunks
from speakstream.audio.span import keep_span
from speakstream.engines.base import Engine, SynthesisOptions
from speakstream.protocol.errors import ErrorCode, SynthesisError
from speakstream.protocol.outputs import SynthesisJob
from speakstream.protocol.stream import JobTiming
from speakstream.scheduler import EnginePool, JobClock, SynthesisTimeoutError

_LOGGER = logging.getLogger(__name__)
# Control characters (NUL and the like) mean nothing to speak and upset engines (espeak);
# one space each keeps every offset into the segment's text.
_CONTROL_TO_SPACE = {c: " " for c in (*range(0x20), 0x7F) if chr(c) not in "\t\n\r"}


@dataclass(frozen=True, slots=True)
class SegmentChunk:
    pcm: PcmChunk
    timing: JobTiming | None  # with the segment's first chunk only


@dataclass(frozen=True, slots=True)
class SegmentDone:
    synthesis_s: float
    queue_s: float


def synthesis_options(job: SynthesisJob) -> SynthesisOptions:
    """The engine's options for ``job``: its speed and the engine options its context asked."""
    asked = dict(job.engine_options)
    seed = asked.pop("seed", None)
    return SynthesisOptions(
        speed=job.speed,
        exaggeration=asked.get("exaggeration"),
        cfg_weight=asked.get("cfg_weight"),
        temperature=asked.get("temperature"),
        seed=None if seed is None else int(seed),
    )


class Synthesizer:
    def __init__(
        self, engine: Engine, pool: EnginePool, seams: SeamPolicy, timeout_s: float
    ) -> None:
        self.engine = engine
        self.pool = pool
        self.seams = seams
        self.timeout_s = timeout_s

    def _chunks(self, job: SynthesisJob, started: list[Iterator[PcmChunk]]) -> Iterator[PcmChunk]:
        """Runs in the worker thread: the engine's audio, shaped for its seams. With
        context words around the segment, the engine says them too and only the segment's
        own words are kept."""
        own = job.segment.text
        text = f"{job.left_context}{own}{job.right_context}".translate(_CONTROL_TO_SPACE)
        raw = self.engine.synthesize(text, job.voice, synthesis_options(job))
        started.append(raw)
        if job.left_context or job.right_context:
            start = len(job.left_context)
            raw = keep_span(raw, start, start + len(own))
        return shape_chunks(
            raw, pause_before=job.pause_before, volume=job.volume, policy=self.seams
        )

    async def run(
        self,
        job: SynthesisJob,
        owner: Hashable = None,
        on_start: Callable[[], None] | None = None,
    ) -> AsyncIterator[SegmentChunk | SegmentDone]:
        """``owner``: whose job it is (a connection), for the pool's fairness;
        ``on_start``: called when a worker takes the job."""
        clock = JobClock()
        started: list[Iterator[PcmChunk]] = []  # the engine's stream, once it exists

        def stop_engine() -> None:
            """A cancel reaches an engine whose stream can stop mid-chunk (Chatterbox:
            at its next token); any other stops at its next chunk."""
            for stream in started:
                cancel = getattr(stream, "cancel", None)
                if callable(cancel):
                    cancel()

        chunks = self.pool.stream(
            lambda: self._chunks(job, started),
            first=job.first,
            timeout_s=self.timeout_s,
            clock=clock,
            owner=owner,
            start_by_s=job.start_by_s,
            on_cancel=stop_engine,
            on_start=on_start,
        )
        try:
            async with contextlib.aclosing(chunks):
                first = True
                async for chunk in chunks:
                    timing = None
                    if first and (first_chunk_s := clock.first_chunk_after_s) is not None:
                        timing = JobTiming(1000 * clock.queue_s, 1000 * first_chunk_s)
                    first = False
                    yield SegmentChunk(chunk, timing)
        except SynthesisTimeoutError:
            raise SynthesisError(
                ErrorCode.SYNTHESIS_TIMEOUT,
                f"segment {job.segment.index} took longer than {self.timeout_s:g} s to "
                "synthesize; its audio is skipped",
                job.context,
            ) from None
        except Exception as exc:
            _LOGGER.warning(
                "the engine failed on segment %d: %s: %s",
                job.segment.index,
                type(exc).__name__,
                exc,
            )
            raise SynthesisError(
                ErrorCode.SYNTHESIS_FAILED,
                f"the engine failed on segment {job.segment.index}; its audio is skipped",
                job.context,
            ) from None
        _LOGGER.debug(
            "segment %s/%d first=%s chars=%d carried=%d queued_ms=%.1f late_ms=%.1f "
            "synthesis_ms=%.1f",
            job.context,
            job.segment.index,
            job.first,
            job.segment.end - job.segment.start,
            len(job.left_context) + len(job.right_context),
            1000.0 * clock.queue_s,
            1000.0 * ((clock.started_s or clock.queued_s) - job.start_by_s),
            1000.0 * clock.synthesis_s,
        )
        yield SegmentDone(clock.synthesis_s, clock.queue_s)
