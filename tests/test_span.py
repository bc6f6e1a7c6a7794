"""Keeping a segment's own words out of audio spoken with context (audio/span.py)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from speakstream.audio.pcm import PcmChunk, WordTiming
from speakstream.audio.span import keep_span, quietest_point

RATE_HZ = 16_000
TEXT = "one two three four"


def ms(n: float) -> int:
    return int(n * RATE_HZ / 1000)


def sentence(words: list[tuple[int, int]], *, gap_ms: float = 40.0) -> PcmChunk:
    """Loud 200 ms bursts, one per word, with quiet gaps of ``gap_ms`` (each gap's
    quietest point in its middle), and the word timings that say so."""
    parts: list[np.ndarray] = []
    timings: list[WordTiming] = []
    position_ms = 0.0
    for index, (start_char, end_char) in enumerate(words):
        if index:
            gap = np.abs(np.linspace(-0.05, 0.05, ms(gap_ms))).astype(np.float32)
            parts.append(gap)
            position_ms += gap_ms
        parts.append(np.full(ms(200), 0.5 * (index + 1) / len(words), dtype=np.float32))
        timings.append(WordTiming(start_char, end_char, position_ms, 200.0))
        position_ms += 200.0
    return PcmChunk(np.concatenate(parts), RATE_HZ, tuple(timings))


def spans(text: str) -> list[tuple[int, int]]:
    out, position = [], 0
    for word in text.split():
        start = text.index(word, position)
        out.append((start, start + len(word)))
        position = start + len(word)
    return out


def test_only_the_span_is_kept_cut_in_the_gaps_with_timings_rebased() -> None:
    chunk = sentence(spans(TEXT))
    # keep "two three": left context "one ", right context " four"
    [kept] = list(keep_span([chunk], 4, 13))
    assert [(w.start_char, w.end_char) for w in kept.words] == [(0, 3), (4, 9)]
    assert TEXT[4:13][0:3] == "two" and TEXT[4:13][4:9] == "three"
    # the cuts lie in the gaps' halves next to the kept words: no sample of "one"
    # (level 0.125) or "four" (level 0.5) is kept, and the words' own samples all are
    assert not np.any(np.isclose(kept.samples, 0.125)) and not np.any(np.isclose(kept.samples, 0.5))
    assert np.count_nonzero(np.isclose(kept.samples, 0.25)) == ms(200)
    assert np.count_nonzero(np.isclose(kept.samples, 0.375)) == ms(200)
    # timings are on the kept audio's clock: "two" starts where its samples do
    first_loud = int(np.flatnonzero(np.isclose(kept.samples, 0.25))[0])
    assert abs(kept.words[0].start_ms - 1000 * first_loud / RATE_HZ) < 1.0
    assert kept.words[-1].end_ms <= kept.duration_ms


def test_sentences_of_the_context_are_dropped_and_the_engine_is_not_asked_past_the_span() -> None:
    text = "Left part. keep this. right part."
    first = sentence([(0, 4), (5, 10)])
    second = sentence([(11, 15), (16, 21)])
    third = sentence([(22, 27), (28, 33)])
    asked: list[int] = []

    def engine() -> Iterator[PcmChunk]:
        for index, chunk in enumerate((first, second, third)):
            asked.append(index)
            yield chunk

    kept = list(keep_span(engine(), 11, 21))
    assert len(kept) == 1 and [w.start_char for w in kept[0].words] == [0, 5]
    assert text[11:21] == "keep this."
    assert kept[0].num_samples == second.num_samples  # the whole sentence is the span
    assert asked == [0, 1, 2]  # the third is looked at, and then nothing more


def test_a_span_at_the_start_or_the_end_is_cut_only_on_its_inner_side() -> None:
    chunk = sentence(spans(TEXT))
    [head] = list(keep_span([chunk], 0, 8))  # "one two " then context
    assert [w.end_char for w in head.words] == [3, 7]
    assert head.samples[0] == chunk.samples[0]  # nothing cut at the front
    [tail] = list(keep_span([chunk], 8, len(TEXT)))
    assert [(w.start_char, w.end_char) for w in tail.words] == [(0, 5), (6, 10)]
    assert tail.samples[-1] == chunk.samples[-1]  # nothing cut at the end


def test_chunks_without_timings_are_kept_only_inside_the_span() -> None:
    untimed = PcmChunk(np.full(ms(50), 0.2, dtype=np.float32), RATE_HZ)
    before = sentence([(0, 4)])
    inside = sentence([(5, 9)])
    after = sentence([(20, 24)])
    kept = list(keep_span([untimed, before, inside, untimed, after], 5, 15))
    assert [c.num_samples for c in kept] == [inside.num_samples, untimed.num_samples]


def test_quietest_point_finds_the_silence_and_stays_in_range() -> None:
    samples = np.full(ms(100), 0.5, dtype=np.float32)
    samples[ms(60) : ms(70)] = 0.0
    point = quietest_point(samples, 0, samples.size, RATE_HZ)
    assert ms(60) <= point <= ms(70)
    assert quietest_point(samples, -50, 10**9, RATE_HZ) in range(samples.size + 1)
    assert quietest_point(samples, 5, 7, RATE_HZ) == 6  # narrower than the window
