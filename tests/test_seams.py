"""Segment joins: no clicks, pauses that follow the punctuation, on real Piper speech."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from speakstream.audio.pcm import PcmChunk
from speakstream.audio.seams import SeamPolicy, shape_chunks
from speakstream.engines import Engine, SynthesisOptions
from speakstream.segmenter import Segmenter, SegmenterPolicy, boundary_after

VOICE = "en_US-joe-medium"
TEXT = (
    "Good morning, and welcome back. Today we will look at how streaming speech works, "
    "why it matters for voice agents, and what can go wrong. First, the text arrives in "
    "small pieces: a few characters, a word, sometimes a whole sentence. The server cuts it "
    "into segments and speaks each one as soon as it can. If the joins between segments "
    "click or pause in odd places, listeners notice at once; so we trim, fade and pause "
    "only where the punctuation says so. Second, the numbers: 3.14, $29.95 and 10:30 a.m. "
    "must never be split. Third, Dr. Smith will explain the rest, e.g. the scheduler, the "
    "worker pool and the deadlines. Finally, we measure everything, twice. Thank you all; "
    "see you tomorrow, same time, same place. Questions are welcome, comments too, and "
    "complaints, as always, go to the usual address."
)


@pytest.fixture(scope="module")
def shaped_segments(piper_engine: Engine) -> list[tuple[str, np.ndarray]]:
    # short segments, many cut inside sentences: the hard case for joins
    seg = Segmenter(SegmenterPolicy(chunk_size=8, chunk_growth=1.0, max_chunk_size=8))
    segments = seg.push(TEXT, 0.0) + seg.flush()
    out = []
    previous = "word"
    for segment in segments:
        raw = piper_engine.synthesize(segment.text, VOICE, SynthesisOptions())
        chunks = list(shape_chunks(raw, pause_before=previous, volume=1.0, policy=SeamPolicy()))
        previous = boundary_after(segment.text)
        out.append((segment.text, np.concatenate([c.samples for c in chunks])))
    return out


def test_the_corpus_has_at_least_50_joins(shaped_segments: list[tuple[str, np.ndarray]]) -> None:
    assert len(shaped_segments) - 1 >= 50


def test_no_join_jumps_more_than_the_speech_itself(
    shaped_segments: list[tuple[str, np.ndarray]],
) -> None:
    audio = [samples for _, samples in shaped_segments]
    join_jumps = [abs(float(b[0]) - float(a[-1])) for a, b in itertools.pairwise(audio)]
    speech_jumps = max(float(np.max(np.abs(np.diff(a)))) for a in audio)
    assert max(join_jumps) <= speech_jumps
    # and in fact they are near silent: fades end every segment at ~0
    assert max(join_jumps) < 0.01


def test_segment_edges_are_faded_to_silence(shaped_segments: list[tuple[str, np.ndarray]]) -> None:
    for _, samples in shaped_segments:
        assert abs(float(samples[0])) < 1e-3 and abs(float(samples[-1])) < 1e-3


def test_pauses_follow_the_punctuation(piper_engine: Engine) -> None:
    policy = SeamPolicy()
    rate = 22050

    def leading_silence_ms(pause_before: str) -> float:
        raw = piper_engine.synthesize("then we go", VOICE, SynthesisOptions())
        [chunk] = list(shape_chunks(raw, pause_before=pause_before, volume=1.0, policy=policy))
        loud = np.flatnonzero(np.abs(chunk.samples) >= policy.silence_threshold)
        return 1000 * int(loud[0]) / rate

    word, clause, sentence, paragraph = (
        leading_silence_ms(k) for k in ("word", "clause", "sentence", "paragraph")
    )
    assert word < 40  # inside a sentence: no pause, only the kept margin
    assert clause == pytest.approx(word + 120, abs=2)
    assert sentence == pytest.approx(word + 250, abs=2)
    assert paragraph == pytest.approx(word + 450, abs=2)


def test_engine_silence_is_trimmed(piper_engine: Engine) -> None:
    raw = list(piper_engine.synthesize("Hello there.", VOICE, SynthesisOptions()))
    [shaped] = list(shape_chunks(iter(raw), pause_before="word", volume=1.0, policy=SeamPolicy()))
    assert shaped.num_samples < raw[0].num_samples
    untrimmed = list(
        shape_chunks(
            iter(raw), pause_before="word", volume=1.0, policy=SeamPolicy(trim_silence=False)
        )
    )
    assert untrimmed[0].num_samples == raw[0].num_samples


def test_dc_offset_is_removed_and_volume_applied() -> None:
    rate = 16000
    t = np.arange(rate) / rate
    tone = (0.2 + 0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    policy = SeamPolicy(trim_silence=False)
    [shaped] = list(
        shape_chunks([PcmChunk(tone, rate)], pause_before="word", volume=0.5, policy=policy)
    )
    assert abs(float(shaped.samples.mean())) < 0.01
    assert float(np.max(np.abs(shaped.samples))) == pytest.approx(0.15, abs=0.01)
