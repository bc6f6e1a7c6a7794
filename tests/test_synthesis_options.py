"""What a job asks of the engine (synthesis.synthesis_options)."""

from __future__ import annotations

from speakstream.engines.base import SynthesisOptions
from speakstream.protocol.outputs import SynthesisJob
from speakstream.segmenter import Boundary, Segment, SegmentReason
from speakstream.synthesis import synthesis_options


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
