"""Segment joins: trim, fades, pauses, word timings and volume.

Most tests shape synthetic chunks (noise bursts with quiet around them, tones cut
mid-cycle), whose every sample is known, so margins, pauses and shifts are checked to the
sample. The ``test_real_piper_*`` tests need real speech: they check that Piper's own edges
(its silence floor, breaths, how a segment cut inside a sentence starts and ends) are
what the seam policy expects, over more than 50 real joins.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from speakstream.audio.pcm import FloatArray, PcmChunk, WordTiming
from speakstream.audio.seams import SeamPolicy, shape_chunks
from speakstream.engines import Engine, SynthesisOptions
from speakstream.segmenter import Segmenter, SegmenterPolicy, boundary_after

RATE_HZ = 16_000
BOUNDARIES = ("word", "clause", "sentence", "paragraph")


def n_samples(ms: float) -> int:
    return int(ms * RATE_HZ / 1000)


def burst(lead_ms: float, burst_ms: float, tail_ms: float, seed: int = 0) -> FloatArray:
    """A loud noise burst (every sample at least 0.1) with an engine-like quiet floor
    (below the silence threshold, not digital zero) before and after it."""
    rng = np.random.default_rng(seed)
    floor = rng.uniform(-0.001, 0.001, n_samples(lead_ms + burst_ms + tail_ms))
    loud = rng.choice([-1.0, 1.0], n_samples(burst_ms)) * rng.uniform(0.1, 0.5, n_samples(burst_ms))
    floor[n_samples(lead_ms) : n_samples(lead_ms) + loud.size] = loud
    return (floor - floor.mean()).astype(np.float32)  # no DC: its removal changes ~nothing


def shape(
    chunks: list[PcmChunk],
    pause_before: str = "word",
    volume: float = 1.0,
    policy: SeamPolicy | None = None,
) -> list[PcmChunk]:
    return list(
        shape_chunks(
            chunks, pause_before=pause_before, volume=volume, policy=policy or SeamPolicy()
        )
    )


def first_loud(samples: FloatArray, policy: SeamPolicy) -> int:
    return int(np.flatnonzero(np.abs(samples) >= policy.silence_threshold)[0])


def test_trim_keeps_the_margins_around_the_sound() -> None:
    policy = SeamPolicy()
    samples = burst(lead_ms=300, burst_ms=200, tail_ms=500)
    [shaped] = shape([PcmChunk(samples, RATE_HZ)], policy=policy)
    assert first_loud(shaped.samples, policy) == n_samples(policy.keep_before_ms)
    kept = n_samples(policy.keep_before_ms) + n_samples(200) + n_samples(policy.keep_after_ms)
    assert shaped.num_samples == kept
    # what is kept is the input itself (apart from the fades at the very edges)
    fade = n_samples(policy.fade_ms)
    start = n_samples(300) - n_samples(policy.keep_before_ms)
    np.testing.assert_allclose(
        shaped.samples[fade:-fade], samples[start + fade : start + kept - fade], atol=1e-6
    )


def test_trim_never_reaches_past_the_chunk() -> None:
    policy = SeamPolicy()
    samples = burst(lead_ms=5, burst_ms=200, tail_ms=10)  # margins shorter than the policy's
    [shaped] = shape([PcmChunk(samples, RATE_HZ)], policy=policy)
    assert shaped.num_samples == samples.size


def test_without_trimming_every_sample_stays_and_no_pause_is_added() -> None:
    policy = SeamPolicy(trim_silence=False)
    samples = burst(lead_ms=300, burst_ms=200, tail_ms=500)
    for boundary in BOUNDARIES:
        [shaped] = shape([PcmChunk(samples, RATE_HZ)], pause_before=boundary, policy=policy)
        assert shaped.num_samples == samples.size


def test_a_silent_chunk_inside_a_sentence_yields_nothing() -> None:
    quiet = burst(lead_ms=300, burst_ms=0, tail_ms=0)
    assert shape([PcmChunk(quiet, RATE_HZ)], pause_before="word") == []


def test_fades_leave_no_click_at_a_join() -> None:
    """Two full-scale tones cut at their peaks would jump by 1.8 where they meet."""
    policy = SeamPolicy(trim_silence=False)
    t = np.arange(n_samples(100)) / RATE_HZ
    a = (0.9 * np.cos(2 * np.pi * 500 * t)).astype(np.float32)  # starts and ends at +0.9
    b = (-0.9 * np.cos(2 * np.pi * 300 * t)).astype(np.float32)  # at -0.9
    shaped_a, shaped_b = (shape([PcmChunk(x, RATE_HZ)], policy=policy)[0].samples for x in (a, b))
    assert abs(float(a[-1]) - float(b[0])) > 1.7  # the click the fades must remove
    assert shaped_a[0] == 0 and shaped_b[0] == 0
    assert abs(float(shaped_a[-1])) < 0.01 and abs(float(shaped_b[-1])) < 0.01
    joined = np.concatenate([shaped_a, shaped_b])
    steepest_tone_step = float(np.max(np.abs(np.diff(a))))
    assert float(np.max(np.abs(np.diff(joined)))) <= steepest_tone_step
    # the fade is only at the edges: the middle is the tone itself
    fade = n_samples(policy.fade_ms)
    np.testing.assert_allclose(shaped_a[fade:-fade], a[fade:-fade], atol=1e-6)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_the_pause_before_a_chunk_follows_the_boundary(boundary: str) -> None:
    policy = SeamPolicy()
    samples = burst(lead_ms=300, burst_ms=200, tail_ms=300)
    [shaped] = shape([PcmChunk(samples, RATE_HZ)], pause_before=boundary, policy=policy)
    pause = n_samples(policy.pause_for(boundary))
    assert first_loud(shaped.samples, policy) == pause + n_samples(policy.keep_before_ms)
    assert not shaped.samples[:pause].any()  # the pause is digital silence


def test_pauses_grow_with_the_boundary_and_none_inside_a_sentence() -> None:
    policy = SeamPolicy()
    pauses = [policy.pause_for(boundary) for boundary in BOUNDARIES]
    assert pauses[0] == 0
    assert pauses == sorted(pauses) and len(set(pauses)) == len(pauses)


def test_a_policy_sets_its_own_pauses() -> None:
    policy = SeamPolicy(clause_pause_ms=77.0)
    samples = burst(lead_ms=100, burst_ms=100, tail_ms=100)
    [clause] = shape([PcmChunk(samples, RATE_HZ)], pause_before="clause", policy=policy)
    [sentence] = shape([PcmChunk(samples, RATE_HZ)], pause_before="sentence", policy=policy)
    keep = n_samples(policy.keep_before_ms)
    assert first_loud(clause.samples, policy) == n_samples(77) + keep
    assert first_loud(sentence.samples, policy) == n_samples(policy.sentence_pause_ms) + keep


def test_later_chunks_of_a_segment_follow_a_sentence_end() -> None:
    """The engine's next chunk is its next sentence: a sentence pause, whatever came before."""
    policy = SeamPolicy()
    chunks = [PcmChunk(burst(100, 100, 100, seed), RATE_HZ) for seed in (1, 2)]
    first, second = shape(chunks, pause_before="word", policy=policy)
    keep = n_samples(policy.keep_before_ms)
    assert first_loud(first.samples, policy) == keep
    assert first_loud(second.samples, policy) == n_samples(policy.pause_for("sentence")) + keep


def test_word_timings_move_with_the_trim_and_the_pause() -> None:
    policy = SeamPolicy()
    samples = burst(lead_ms=300, burst_ms=400, tail_ms=600)
    words = (
        WordTiming(0, 5, 300.0, 150.0),  # the burst's first half
        WordTiming(6, 11, 450.0, 150.0),  # and its second
        WordTiming(12, 13, 1200.0, 100.0),  # a word in the trimmed tail
    )
    [shaped] = shape([PcmChunk(samples, RATE_HZ, words)], pause_before="clause", policy=policy)
    shift_ms = policy.pause_for("clause") - (300 - policy.keep_before_ms)
    first, second, tail = shaped.words
    assert first == WordTiming(0, 5, pytest.approx(300 + shift_ms), pytest.approx(150.0))
    assert second == WordTiming(6, 11, pytest.approx(450 + shift_ms), pytest.approx(150.0))
    # each word still starts where its sound does
    assert 1000 * first_loud(shaped.samples, policy) / RATE_HZ == pytest.approx(first.start_ms)
    # a word past the kept audio is pinned to its end, never beyond the chunk
    assert tail.start_ms == pytest.approx(shaped.duration_ms) and tail.duration_ms == 0


def test_dc_offset_is_removed_and_volume_applied() -> None:
    t = np.arange(RATE_HZ) / RATE_HZ
    tone = (0.2 + 0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    policy = SeamPolicy(trim_silence=False)
    [shaped] = shape([PcmChunk(tone, RATE_HZ)], volume=0.5, policy=policy)
    assert abs(float(shaped.samples.mean())) < 0.01
    assert float(np.max(np.abs(shaped.samples))) == pytest.approx(0.15, abs=0.01)


def test_speech_asymmetry_is_not_an_offset_so_silence_stays_silent() -> None:
    # Speech's mean is slightly off zero (Piper: ~0.0005) while its pauses sit at zero;
    # subtracting that mean would put a constant offset into every pause (measured: the
    # mel-cepstral distance of whole paragraphs to Piper's own output grew by ~1 dB).
    rate = RATE_HZ
    quiet = np.zeros(n_samples(300), dtype=np.float32)
    loud = np.clip(0.3 * np.sin(2 * np.pi * 150 * np.arange(n_samples(500)) / rate) + 0.004, -1, 1)
    chunk = np.concatenate([quiet, loud.astype(np.float32), quiet])
    assert 0.0001 < float(chunk.mean()) < SeamPolicy().dc_offset_threshold
    [shaped] = shape([PcmChunk(chunk, rate)], policy=SeamPolicy(trim_silence=False))
    fade = n_samples(SeamPolicy().fade_ms)
    np.testing.assert_array_equal(shaped.samples[fade : n_samples(300)], 0.0)


def test_loud_volume_clips_to_full_scale_and_keeps_the_input() -> None:
    samples = burst(lead_ms=50, burst_ms=200, tail_ms=50)
    original = samples.copy()
    [shaped] = shape([PcmChunk(samples, RATE_HZ)], volume=4.0)
    assert shaped.samples.dtype == np.float32
    assert float(np.max(np.abs(shaped.samples))) == 1.0
    assert np.array_equal(samples, original)  # the engine's array is never written to


# Real Piper speech: only an engine's own edges show whether the seams fit them.

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
def real_piper_joins(piper_engine: Engine) -> list[tuple[str, FloatArray]]:
    # short segments, many cut inside sentences: the hard case for joins
    seg = Segmenter(
        SegmenterPolicy(chunk_size=8, chunk_growth=1.0, max_chunk_size=8, natural_cuts=False)
    )
    segments = seg.push(TEXT, 0.0) + seg.flush()
    out = []
    previous = "word"
    for segment in segments:
        raw = piper_engine.synthesize(segment.text, VOICE, SynthesisOptions())
        chunks = list(shape_chunks(raw, pause_before=previous, volume=1.0, policy=SeamPolicy()))
        previous = boundary_after(segment.text)
        out.append((segment.text, np.concatenate([c.samples for c in chunks])))
    return out


def test_real_piper_corpus_has_at_least_50_joins(
    real_piper_joins: list[tuple[str, FloatArray]],
) -> None:
    assert len(real_piper_joins) - 1 >= 50


def test_real_piper_joins_jump_no_more_than_the_speech_itself(
    real_piper_joins: list[tuple[str, FloatArray]],
) -> None:
    audio = [samples for _, samples in real_piper_joins]
    join_jumps = [abs(float(b[0]) - float(a[-1])) for a, b in itertools.pairwise(audio)]
    speech_jumps = max(float(np.max(np.abs(np.diff(a)))) for a in audio)
    assert max(join_jumps) <= speech_jumps
    # and in fact they are near silent: fades end every segment at ~0
    assert max(join_jumps) < 0.01


def test_real_piper_segment_edges_are_faded_to_silence(
    real_piper_joins: list[tuple[str, FloatArray]],
) -> None:
    for _, samples in real_piper_joins:
        assert abs(float(samples[0])) < 1e-3 and abs(float(samples[-1])) < 1e-3


def test_real_piper_edge_silence_is_under_the_threshold_and_trimmed(piper_engine: Engine) -> None:
    """Piper's own silence floor must sit under ``silence_threshold`` for trimming to work."""
    policy = SeamPolicy()
    raw = list(piper_engine.synthesize("Hello there.", VOICE, SynthesisOptions()))
    [shaped] = shape(raw, policy=policy)
    rate = raw[0].sample_rate_hz
    margins_ms = policy.keep_before_ms + policy.keep_after_ms
    assert shaped.num_samples < raw[0].num_samples
    assert 1000 * first_loud(shaped.samples, policy) / rate <= policy.keep_before_ms + 1
    assert shaped.duration_ms > margins_ms  # the speech itself is all kept


def test_pieces_of_one_sentence_are_joined_as_they_are() -> None:
    """An engine streaming a sentence in pieces (Chatterbox) marks all but the last
    ``continues``: between them no pause, fade, trim or DC step, so the joined pieces are
    the sentence's audio itself; its outer edges are still shaped."""
    policy = SeamPolicy()
    t = np.arange(n_samples(900)) / RATE_HZ
    tone = (0.5 * np.sin(2 * np.pi * 220 * t) + 0.05).astype(np.float32)  # with a DC offset
    tone[: n_samples(200)] = 0.0  # silence before the voice: trimmed as usual
    tone[n_samples(400) : n_samples(500)] = 0.0  # a quiet piece inside the sentence
    cuts = [0, n_samples(300), n_samples(400), n_samples(500), tone.size]
    pieces = [
        PcmChunk(tone[a:b], RATE_HZ, continues=b < tone.size) for a, b in itertools.pairwise(cuts)
    ]
    shaped = shape(pieces, pause_before="sentence", policy=policy)
    assert [c.continues for c in shaped] == [True, True, True, False]
    joined = np.concatenate([c.samples for c in shaped])
    pause = n_samples(policy.sentence_pause_ms)  # before the sentence, as for any chunk
    start = first_loud(tone, policy) - n_samples(policy.keep_before_ms)
    fade = n_samples(policy.fade_ms)
    inner = joined[pause + fade : -fade]
    np.testing.assert_array_equal(inner, tone[start + fade : -fade])
    assert float(np.max(np.abs(joined[:pause]))) == 0.0


def test_a_piece_that_continues_is_not_faded_at_its_end() -> None:
    tone = np.full(n_samples(100), 0.5, dtype=np.float32)
    [alone] = shape([PcmChunk(tone, RATE_HZ)], policy=SeamPolicy(trim_silence=False))
    [piece] = shape(
        [PcmChunk(tone, RATE_HZ, continues=True)], policy=SeamPolicy(trim_silence=False)
    )
    assert alone.samples[-1] == 0.0  # faded out, mean removed
    assert piece.samples[-1] == 0.5 and piece.samples[0] == 0.0  # faded in only
