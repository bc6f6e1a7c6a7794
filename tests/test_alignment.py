"""Word timings from phoneme timings (sans-I/O) and the spoken timeline."""

from __future__ import annotations

import pytest

from speakstream.audio.pcm import WordTiming
from speakstream.engines.alignment import WordAligner, spoken_words
from speakstream.protocol.timeline import SpokenTimeline

RATE = 1000  # one sample per millisecond keeps the arithmetic readable


def phonemes(*words: str, gap: int = 10, pause: int = 50) -> list[tuple[str, int]]:
    """Phoneme timings: each character of a word lasts 20 samples; ',' is a pause."""
    out: list[tuple[str, int]] = [("^", 30)]
    for i, word in enumerate(words):
        if i:
            out.append((" ", gap))
        for ch in word:
            out.append((ch, pause if ch == "," else 20))
    out.append(("$", 40))
    return out


def test_spoken_words_skip_edges_spaces_and_pauses() -> None:
    words = spoken_words(phonemes("ab", "c,"))
    assert [(w.start_sample, w.end_sample) for w in words] == [(30, 70), (80, 100)]


def test_tokens_take_as_many_spoken_words_as_they_become() -> None:
    text = "It costs $29.95 now."
    counts = {"It": 1, "costs": 1, "$29.95": 6, "now.": 1}
    aligner = WordAligner(text, lambda token: counts[token])
    spoken = ["it", "costs", "dollar", "twenty", "nine", "point", "nine", "five", "now"]
    words = aligner.align(phonemes(*spoken), RATE, last=True)
    assert [text[w.start_char : w.end_char] for w in words] == ["It", "costs", "$29.95", "now."]
    price = words[2]
    # "$29.95" runs from the start of "dollar" to the end of "five"
    starts = [w.start_sample for w in spoken_words(phonemes(*spoken))]
    ends = [w.end_sample for w in spoken_words(phonemes(*spoken))]
    assert price.start_ms == starts[2] and price.end_ms == ends[7]


def test_chunks_are_aligned_in_order_and_silent_tokens_get_zero_length() -> None:
    text = "One two. Three — four."
    aligner = WordAligner(text, lambda token: 0 if token == "—" else 1)
    first = aligner.align(phonemes("one", "two"), RATE, last=False)
    second = aligner.align(phonemes("three", "four"), RATE, last=True)
    assert [text[w.start_char : w.end_char] for w in first] == ["One", "two."]
    assert [text[w.start_char : w.end_char] for w in second] == ["Three", "—", "four."]
    assert second[1].duration_ms == 0


def test_a_count_mismatch_shares_the_words_in_proportion() -> None:
    text = "aa bb cc dd"
    aligner = WordAligner(text, lambda token: 1)
    words = aligner.align(phonemes("a", "b"), RATE, last=True)  # 4 tokens, 2 spoken words
    assert len(words) == 4
    assert [w.start_ms for w in words] == sorted(w.start_ms for w in words)
    assert words[-1].end_ms == spoken_words(phonemes("a", "b"))[-1].end_sample


def test_word_shift_stays_inside_the_chunk() -> None:
    w = WordTiming(0, 3, 100.0, 50.0)
    assert w.shifted(-120.0, 500.0) == WordTiming(0, 3, 0.0, 30.0)
    assert w.shifted(400.0, 520.0) == WordTiming(0, 3, 500.0, 20.0)


def test_timeline_puts_chunks_on_the_context_clock() -> None:
    timeline = SpokenTimeline()
    timeline.add_text("Hello there. How are you?")
    first = timeline.add_audio(
        0, 13, 1000.0, [WordTiming(0, 5, 100, 300), WordTiming(6, 12, 450, 350)]
    )
    second = timeline.add_audio(13, 25, 800.0, [WordTiming(0, 3, 50, 200)])
    assert [w["word"] for w in first] == ["Hello", "there."]
    assert second[0] == {
        "word": "How",
        "start": 13,
        "end": 16,
        "start_ms": 1050.0,
        "duration_ms": 200.0,
    }
    chars = SpokenTimeline.characters(first)
    assert [c["char"] for c in chars[:5]] == list("Hello")
    assert chars[1]["start_ms"] == 160.0 and chars[1]["duration_ms"] == 60.0


@pytest.mark.parametrize(
    ("played_ms", "spoken", "unspoken"),
    [
        (0, "", "Hello there. How are you?"),
        (249, "", "Hello there. How are you?"),  # less than half of "Hello"
        (250, "Hello", " there. How are you?"),
        (700, "Hello there.", " How are you?"),
        (5000, "Hello there. How", " are you?"),  # the rest was never released
    ],
)
def test_split_at_played_ms(played_ms: float, spoken: str, unspoken: str) -> None:
    timeline = SpokenTimeline()
    timeline.add_text("Hello there. How are you?")
    timeline.add_audio(0, 13, 1000.0, [WordTiming(0, 5, 100, 300), WordTiming(6, 12, 450, 350)])
    timeline.add_audio(13, 25, 800.0, [WordTiming(0, 3, 50, 200)])
    answer = timeline.split_at(played_ms)
    assert (answer["spoken_text"], answer["unspoken_text"]) == (spoken, unspoken)
    assert answer["split_offset"] == len(spoken)


def test_without_word_timings_segments_are_the_unit() -> None:
    timeline = SpokenTimeline()
    timeline.add_text("First part, second part.")
    timeline.add_audio(0, 12, 1000.0, [])
    timeline.add_audio(12, 24, 1000.0, [])
    assert timeline.split_at(1200)["spoken_text"] == "First part, "


def test_the_text_window_is_bounded() -> None:
    timeline = SpokenTimeline(max_text_chars=10, max_entries=2)
    timeline.add_text("abcdefghij")
    timeline.add_text("klmno")
    for i in range(5):
        timeline.add_audio(i * 3, i * 3 + 3, 100.0, [])
    answer = timeline.split_at(10_000)
    assert answer["text_offset"] == 5
    assert answer["spoken_text"] == "fghijklmno"


def test_neighbours_spoken_as_one_word_split_it_and_later_words_stay_exact() -> None:
    # espeak says "in the" as one word: three tokens, two spoken words
    text = "in the sun"
    spoken = ["inthe", "sun"]
    starts = [w.start_sample for w in spoken_words(phonemes(*spoken))]
    ends = [w.end_sample for w in spoken_words(phonemes(*spoken))]
    merged = WordAligner(
        text, lambda token: 1, lambda a, b: 0.4 if (a, b) == ("in", "the") else None
    )
    words = merged.align(phonemes(*spoken), RATE, last=True)
    assert [text[w.start_char : w.end_char] for w in words] == ["in", "the", "sun"]
    joint = ends[0] - starts[0]
    assert words[0].start_ms == starts[0]
    assert words[1].start_ms == pytest.approx(starts[0] + 0.4 * joint)
    assert words[2].start_ms == starts[1] and words[2].end_ms == ends[1]  # exact, no drift
    # without knowing of the merge, every boundary drifts: "sun" would lose its start
    naive = WordAligner(text, lambda token: 1).align(phonemes(*spoken), RATE, last=True)
    assert naive[2].start_ms > starts[1]
