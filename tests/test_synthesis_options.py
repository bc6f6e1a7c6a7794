"""What a job asks of the engine (synthesis.synthesis_options), and a cancel reaching it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

from speakstream.audio.pcm import PcmChunk
from speakstream.audio.seams import SeamPolicy
from speakstream.engines.base import EngineCapabilities, SynthesisOptions, VoiceInfo
from speakstream.protocol.outputs import SynthesisJob
from speakstream.scheduler import EnginePool
from speakstream.segmenter import Boundary, Segment, SegmentReason
from speakstream.synthesis import SegmentChunk, Synthesizer, synthesis_options


def job(**changes: object) -> SynthesisJob:
    segment = Segment(0, "Hi.", 0, 3, SegmentReason.FLUSH)
    return SynthesisJob(
        job_id=1,
        context="c",
        stream=0,
        segment=segment,
        voice="v",
        speed=1.25,
        volume=1.0,
        pause_before=Boundary.WORD,
        first=True,
        **changes,  # type: ignore[arg-type]
    )


def test_speed_and_the_engine_options_asked_reach_the_engine() -> None:
    assert synthesis_options(job()) == SynthesisOptions(speed=1.25)
    asked = job(engine_options=(("cfg_weight", 0.0), ("temperature", 0.6), ("seed", 42.0)))
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
        run = Synthesizer(engine, pool, SeamPolicy(trim_silence=False), timeout_s=60.0).run(job())
        first = await anext(run)
        assert isinstance(first, SegmentChunk)
        [stream] = engine.streams
        assert not stream.cancelled.is_set()  # the engine is inside its second chunk
        await run.aclose()  # the client cancelled
        assert stream.cancelled.is_set()  # told at once, not after the chunk
    finally:
        pool.close()
