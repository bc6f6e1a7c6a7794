"""The one synthesize path (synthesis.py): what a job asks of the engine, a cancel reaching
it, and context-carrying synthesis with real Piper."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from speakstream.audio.pcm import PcmChunk
from speakstream.audio.seams import SeamPolicy
from speakstream.bench.quality import Transcriber
from speakstream.bench.speech_metrics import normalize_words
from speakstream.engines.base import Engine, EngineCapabilities, SynthesisOptions, VoiceInfo
from speakstream.protocol.outputs import SynthesisJob
from speakstream.scheduler import EnginePool
from speakstream.segmenter import Boundary, Segment, SegmentReason
from speakstream.synthesis import SegmentChunk, Synthesizer, synthesis_options

SENTENCE = "Have you ever wondered why the sky turns orange at sunset?"


def job(text: str, left: str = "", right: str = "", **changes: float) -> SynthesisJob:
    """A job for ``text`` (a piece of ``SENTENCE``) with these context words; ``changes``:
    other fields (``speed``...)."""
    start = SENTENCE.index(text)
    segment = Segment(1, text, start, start + len(text), SegmentReason.PLAYBACK)
    spec = SynthesisJob(
        job_id=1,
        context="c",
        stream=0,
        segment=segment,
        voice="en_US-joe-medium",
        speed=1.0,
        volume=1.0,
        pause_before=Boundary.WORD,
        first=False,
        left_context=left,
        right_context=right,
    )
    return dataclasses.replace(spec, **changes)


async def synthesize(engine: Engine, spec: SynthesisJob) -> list[PcmChunk]:
    pool = EnginePool(engine, max_workers=1)
    synthesizer = Synthesizer(engine, pool, SeamPolicy(), timeout_s=30.0)
    try:
        return [item.pcm async for item in synthesizer.run(spec) if isinstance(item, SegmentChunk)]
    finally:
        pool.close()


def test_speed_and_the_engine_options_asked_reach_the_engine() -> None:
    assert synthesis_options(job("Have ", speed=1.25)) == SynthesisOptions(speed=1.25)
    asked = dataclasses.replace(
        job("Have ", speed=1.25),
        engine_options=(("cfg_weight", 0.0), ("temperature", 0.6), ("seed", 42.0)),
    )
    options = synthesis_options(asked)
    assert options == SynthesisOptions(speed=1.25, cfg_weight=0.0, temperature=0.6, seed=42)
    assert isinstance(options.seed, int)


class _StoppableStream:
    """One chunk, then a long one that ends only when cancelled (like Chatterbox between
    two vocoder decodes)."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self._chunks = 0

    def __iter__(self) -> _StoppableStream:
        return self

    def __next__(self) -> PcmChunk:
        self._chunks += 1
        if self._chunks == 1:
            return PcmChunk(np.full(1600, 0.1, dtype=np.float32), 16_000)
        self.cancelled.wait(30.0)  # bounded: a test must stop by itself
        raise StopIteration

    def cancel(self) -> None:
        self.cancelled.set()


class _StoppableEngine:
    def __init__(self) -> None:
        self.streams: list[_StoppableStream] = []

    @property
    def capabilities(self) -> EngineCapabilities:
        voice = VoiceInfo("v", 16_000)
        return EngineCapabilities("stoppable", (voice,), "v", True, False)

    def synthesize(self, text: str, voice: str, options: SynthesisOptions) -> Iterator[PcmChunk]:
        stream = _StoppableStream()
        self.streams.append(stream)
        return stream

    def close(self) -> None:
        pass


async def test_a_cancel_reaches_an_engine_that_can_stop_inside_a_chunk() -> None:
    engine = _StoppableEngine()
    pool = EnginePool(engine, max_workers=1)
    try:
        synthesizer = Synthesizer(engine, pool, SeamPolicy(trim_silence=False), timeout_s=60.0)
        run = synthesizer.run(job("Have "))
        first = await anext(run)
        assert isinstance(first, SegmentChunk)
        [stream] = engine.streams
        assert not stream.cancelled.is_set()  # the engine is inside its second chunk
        await run.aclose()  # the client cancelled
        assert stream.cancelled.is_set()  # told at once, not after the chunk
    finally:
        pool.close()


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber(cpu_threads=1)


async def test_with_context_only_the_segments_own_words_are_spoken(
    piper_engine: Engine, transcriber: Transcriber
) -> None:
    own = "wondered why the sky "
    alone = await synthesize(piper_engine, job(own))
    carried = await synthesize(piper_engine, job(own, "Have you ever ", "turns orange"))
    words = [w for chunk in carried for w in chunk.words]
    # the timings name exactly the segment's words, as offsets into the segment's text
    assert [own[w.start_char : w.end_char] for w in words] == own.split()
    audio = np.concatenate([c.samples for c in carried])
    assert all(0 <= w.start_ms <= w.end_ms <= 1000 * audio.size / 22050 for w in words)
    # what is heard is those words, none of the context ("ever" before, "turns" after)
    # (the recognizer may mishear a fragment's words, e.g. "the sky" as "this guy")
    heard = normalize_words(transcriber.transcribe(audio.astype(np.float64), 22050))
    assert heard[:2] == ["wondered", "why"], heard
    assert not {"have", "you", "ever", "turns", "orange"} & set(heard), heard
    # and it lasts about as long as the same words said alone (not the whole sentence)
    alone_s = sum(c.num_samples for c in alone) / 22050
    assert 0.6 * alone_s < audio.size / 22050 < 1.4 * alone_s


async def test_a_segment_at_a_sentence_start_hears_only_what_follows(
    piper_engine: Engine, transcriber: Transcriber
) -> None:
    own = "Have you ever "
    carried = await synthesize(piper_engine, job(own, right="wondered why"))
    assert [own[w.start_char : w.end_char] for c in carried for w in c.words] == own.split()
    audio = np.concatenate([c.samples for c in carried]).astype(np.float64)
    heard = normalize_words(transcriber.transcribe(audio, 22050))
    assert heard == ["have", "you", "ever"], heard
