from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speakstream.segmenter import Segment, Segmenter, SegmenterPolicy, SegmentReason


def eager(**changes: object) -> SegmenterPolicy:
    """Eager cuts (growth targets after the first segment): what most tests here check;
    natural cuts are checked at the end of this file and, with a listener, in
    test_listener.py."""
    return SegmenterPolicy(natural_cuts=False, **changes)  # type: ignore[arg-type]


def push_in_pieces(
    text: str, cuts: list[int], policy: SegmenterPolicy | None = None
) -> list[Segment]:
    seg = Segmenter(policy or eager())
    out: list[Segment] = []
    pos = 0
    for cut in sorted(set(cuts)):
        out += seg.push(text[pos:cut], 0.0)
        pos = cut
    out += seg.push(text[pos:], 0.0)
    out += seg.flush()
    return out


def texts(segments: list[Segment]) -> list[str]:
    return [s.text for s in segments]


def check_exactly_once(text: str, segments: list[Segment]) -> None:
    assert "".join(texts(segments)) == text
    pos = 0
    for i, s in enumerate(segments):
        assert s.index == i
        assert s.start == pos and s.end == pos + len(s.text)
        assert text[s.start : s.end] == s.text
        assert s.text, "no empty segments"
        pos = s.end
    assert pos == len(text)


SAMPLE = (
    "Hello there, Dr. Smith. It costs $29.95 at 10:30 a.m. on example.com, e.g. today. "
    "Pi is 3.14159! Visit https://example.com/a.b?c=1 now. This is a much longer sentence "
    "that goes on and on without any punctuation for quite a while so that word cuts happen. "
    "Done."
)


def test_first_segment_is_first_word_boundary_past_min_length() -> None:
    seg = Segmenter(eager())
    assert seg.push("Hel", 0) == []
    assert seg.push("lo", 0) == []  # no boundary yet: the word may go on
    out = seg.push(" th", 0)
    assert texts(out) == ["Hello "]
    assert out[0].reason is SegmentReason.BOUNDARY


def test_first_segment_waits_for_min_text_length() -> None:
    seg = Segmenter(eager(min_text_length=8))
    assert seg.push("Hi you ", 0) == []
    assert texts(seg.push("all ", 0)) == ["Hi you all "]


def test_without_preemptive_generation_first_segment_waits_for_sentence_end() -> None:
    seg = Segmenter(eager(preemptive_generation=False))
    assert seg.push("Hello there, my friend ", 0) == []
    assert texts(seg.push("today. And", 0)) == ["Hello there, my friend today. "]


def test_never_splits_numbers_prices_times_abbreviations_urls() -> None:
    segments = push_in_pieces(SAMPLE, [])
    check_exactly_once(SAMPLE, segments)
    for protected in (
        "3.14159!",
        "$29.95",
        "10:30",
        "e.g. today",
        "Dr. Smith",
        "example.com,",
        "https://example.com/a.b?c=1",
        "a.m. on",
    ):
        assert any(protected in s.text for s in segments), protected


@pytest.mark.parametrize(
    "abbreviation", ["Dr.", "Mr.", "e.g.", "i.e.", "U.S.", "J.", "etc.", "vs."]
)
def test_no_cut_right_after_an_abbreviation(abbreviation: str) -> None:
    policy = eager(min_text_length=1, chunk_size=1, max_chunk_size=1, max_segment_chars=400)
    text = f"Yes. {abbreviation} Brown went home. "
    segments = push_in_pieces(text, [])
    assert not any(s.text.endswith(f"{abbreviation} ") for s in segments), texts(segments)
    # the same policy does cut after ordinary words
    assert texts(push_in_pieces("Yes. Brown went home. ", [], policy))[1:3] == ["Brown ", "went "]


def test_later_segments_grow_toward_whole_sentences() -> None:
    words = " ".join(f"word{i}" for i in range(200)) + ". "
    segments = push_in_pieces(words, [])
    lengths = [len(s.text) for s in segments[:-1]]
    assert lengths[0] < lengths[1] < lengths[2] < lengths[3]
    assert max(lengths) <= eager().max_chunk_size * 1.5 + 10


def test_sentence_end_always_cuts_after_first_segment() -> None:
    segments = push_in_pieces("Hello there. Yes. Fine, then. Go.", [])
    assert texts(segments) == ["Hello ", "there. ", "Yes. ", "Fine, then. ", "Go."]


def test_clause_cut_at_target_length() -> None:
    policy = eager(chunk_size=20, max_chunk_size=20, max_segment_chars=400)
    segments = push_in_pieces("Well then, we could go out, maybe later, or not", [], policy)
    # "then, " is a clause boundary below the target (20): no cut; "out, " is past it.
    assert texts(segments)[1] == "then, we could go out, "
    # with no clause in reach, a plain word boundary cuts at 1.5 x the target
    segments = push_in_pieces("Well then we could go out maybe later or not", [], policy)
    assert texts(segments)[1] == "then we could go out maybe later "


def test_newline_ends_a_unit() -> None:
    segments = push_in_pieces("# Title here\n- item one\n- item two", [])
    assert texts(segments) == ["# Title ", "here\n", "- item one\n", "- item two"]


def test_cjk_punctuation_is_a_boundary_without_spaces() -> None:
    text = "你好世界，今天天气很好。我们去公园吧！"
    segments = push_in_pieces(text, [], eager(min_text_length=2))
    check_exactly_once(text, segments)
    assert texts(segments)[0] == "你好世界，"
    assert "今天天气很好。" in texts(segments)


def test_overlong_token_is_cut_at_max_segment_chars() -> None:
    token = "x" * 1000
    segments = push_in_pieces(token, [])
    check_exactly_once(token, segments)
    assert segments[0].reason is SegmentReason.MAX_LENGTH
    assert all(len(s.text) <= eager().max_segment_chars for s in segments)


def test_idle_flush_complete_words_then_partial_word() -> None:
    seg = Segmenter(eager(min_text_length=50))
    assert seg.push("I think we sho", 10.0) == []
    assert seg.idle_deadline_s() == pytest.approx(10.1)
    assert seg.poll(10.05) == []
    out = seg.poll(10.1)
    assert texts(out) == ["I think we "]
    assert out[0].reason is SegmentReason.IDLE
    assert seg.idle_deadline_s() == pytest.approx(11.0)
    assert texts(seg.poll(11.0)) == ["sho"]
    assert seg.idle_deadline_s() is None
    assert seg.poll(20.0) == []


def test_new_input_resets_the_idle_clock() -> None:
    seg = Segmenter(eager(min_text_length=50))
    seg.push("one two ", 0.0)
    seg.push("three ", 0.09)
    assert seg.poll(0.15) == []
    assert texts(seg.poll(0.19)) == ["one two three "]


def test_flush_forces_everything_out_and_is_idempotent() -> None:
    seg = Segmenter(eager())
    seg.push("Hi", 0.0)
    assert texts(seg.flush()) == ["Hi"]
    assert seg.flush() == []
    assert seg.buffered_chars == 0
    assert seg.offset == 2


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="min_text_length"):
        eager(min_text_length=0)
    with pytest.raises(ValueError, match="max_chunk_size"):
        eager(chunk_size=50, max_chunk_size=10)


_ATOMS = [
    *"abcdefgh XYZ.,;:!?'\"$0123456789-\n\t你。",
    "e.g. ",
    "Dr. ",
    " 3.14 ",
    "10:30",
    "hello ",
]
text_strategy = st.lists(st.sampled_from(_ATOMS), max_size=150).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=text_strategy, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=40))
def test_segments_do_not_depend_on_how_the_input_was_split(text: str, cuts: list[int]) -> None:
    cuts = [c for c in cuts if c <= len(text)]
    whole = push_in_pieces(text, [])
    pieces = push_in_pieces(text, cuts)
    check_exactly_once(text, whole)
    check_exactly_once(text, pieces)
    assert texts(pieces) == texts(whole)


@settings(max_examples=100, deadline=None)
@given(
    text=text_strategy,
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=40),
    min_len=st.integers(1, 30),
    chunk=st.integers(1, 60),
    preemptive=st.booleans(),
)
def test_nothing_lost_or_duplicated_under_any_policy(
    text: str, cuts: list[int], min_len: int, chunk: int, preemptive: bool
) -> None:
    policy = eager(
        min_text_length=min_len,
        chunk_size=chunk,
        max_chunk_size=max(chunk, 100),
        preemptive_generation=preemptive,
    )
    check_exactly_once(text, push_in_pieces(text, [c for c in cuts if c <= len(text)], policy))


@settings(max_examples=400, deadline=None)
@given(text=text_strategy, gaps=st.lists(st.floats(0, 2), min_size=1, max_size=20))
def test_idle_flushes_never_lose_or_duplicate(text: str, gaps: list[float]) -> None:
    seg = Segmenter(eager())
    out: list[Segment] = []
    now = 0.0
    step = max(1, len(text) // len(gaps))
    for i, gap in zip(range(0, len(text), step), gaps + [0.0] * len(text), strict=False):
        out += seg.push(text[i : i + step], now)
        now += gap
        out += seg.poll(now)
    out += seg.flush()
    check_exactly_once(text, out)


def _work_for(n: int, piece_chars: int) -> int:
    seg = Segmenter(eager())
    text = ("word, another word. " * (n // 20 + 1))[:n]
    for start in range(0, n, piece_chars):
        seg.push(text[start : start + piece_chars], 0.0)
    seg.flush()
    return seg.work_chars


@pytest.mark.parametrize("piece_chars", [1, 7, 100_000])
def test_work_is_linear_in_input_length(piece_chars: int) -> None:
    # Counted work (characters scanned or copied), not wall time: deterministic.
    small = _work_for(10_000, piece_chars)
    large = _work_for(80_000, piece_chars)
    assert large / small == pytest.approx(8.0, rel=0.05)
    assert small / 10_000 < 400  # a bounded constant per character


def test_a_long_unbroken_token_is_linear_too() -> None:
    seg = Segmenter(eager())
    for _ in range(200):
        seg.push("x" * 1000, 0.0)
    assert seg.work_chars / 200_000 < 10


def test_idle_flush_when_input_arrived_at_time_zero() -> None:
    # Regression: a last-input time of 0.0 was treated as "no input" (falsy).
    seg = Segmenter(eager())
    seg.push("a", 0.0)
    assert texts(seg.poll(1.0)) == ["a"]


def test_growth_schedule_does_not_overflow_on_very_long_contexts() -> None:
    policy = eager()
    assert policy.target_chars(100_000) == policy.max_chunk_size


def test_idle_flush_deadline_and_decision_agree_under_float_rounding() -> None:
    # Regression: 1.2957328167722173 + 1.0 - 1.2957328167722173 < 1.0, so the poll that
    # the deadline scheduled judged the word "not yet due" and cut an empty segment.
    seg = Segmenter(eager())
    last = 1.2957328167722173
    seg.push("g.", last)
    deadline = seg.idle_deadline_s()
    assert deadline is not None
    assert texts(seg.poll(deadline)) == ["g."]


def test_flush_words_keeps_the_word_being_typed() -> None:
    seg = Segmenter(eager(min_text_length=50))
    seg.push("we could go tom", 0.0)
    assert seg.has_complete_words
    out = seg.flush_words()
    assert texts(out) == ["we could go "] and out[0].reason is SegmentReason.PLAYBACK
    assert not seg.has_complete_words and seg.flush_words() == []
    assert texts(seg.flush()) == ["tom"]


# --- natural cuts ------------------------------------------------------------------------

NATURAL = SegmenterPolicy()


def test_natural_cuts_keep_sentences_whole_after_the_first_segment() -> None:
    text = "Well, that is a long sentence with clauses, commas, and many many words in it. Next."
    segments = texts(push_in_pieces(text, [], NATURAL))
    assert segments == [
        "Well, ",
        "that is a long sentence with clauses, commas, and many many words in it. ",
        "Next.",
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(SAMPLE)), max_size=12))
def test_natural_cuts_do_not_depend_on_how_the_text_was_split(cuts: list[int]) -> None:
    whole = push_in_pieces(SAMPLE, [], NATURAL)
    pieces = push_in_pieces(SAMPLE, cuts, NATURAL)
    check_exactly_once(SAMPLE, pieces)
    assert texts(pieces) == texts(whole)


def test_flush_phrase_cuts_after_the_last_clause_else_the_last_word() -> None:
    seg = Segmenter(NATURAL)
    assert texts(seg.push("Hello there, my dear friend, how are yo", 0.0)) == ["Hello "]
    [phrase] = seg.flush_phrase()
    assert phrase.text == "there, my dear friend, " and phrase.reason is SegmentReason.PLAYBACK
    [words] = seg.flush_phrase()  # no clause left: the whole words
    assert words.text == "how are "
    assert seg.flush_phrase() == []  # "yo" is still being typed
    assert texts(seg.flush()) == ["yo"]


def test_the_first_segment_takes_a_short_first_clause_already_there() -> None:
    policy = SegmenterPolicy(first_segment_max_chars=24)
    text = "Thanks for waiting, I looked at your order. It left on Tuesday."
    assert texts(push_in_pieces(text, [], policy))[0] == "Thanks for waiting, "
    # not when the clause is longer than the budget allows
    short = SegmenterPolicy(first_segment_max_chars=12)
    assert texts(push_in_pieces(text, [], short))[0] == "Thanks "
    # and never by waiting: typed a character at a time, the first word goes at once
    typed = push_in_pieces(text, list(range(len(text))), policy)
    assert texts(typed)[0] == "Thanks "


@pytest.mark.parametrize("text", ["   ) ", " ] ]  ", "\n\n» ", "  '"])
def test_boundary_after_whitespace_and_closers_only(text: str) -> None:
    # Found by coverage-guided fuzzing: a segment of spaces and a closing bracket made
    # boundary_after index an empty list (and the session raise).
    from speakstream.segmenter import Boundary, boundary_after

    assert boundary_after(text) in tuple(Boundary)


# --- limit_chars: the longest segment wanted (set by the listener model under load) ---


def _limited(limit: int | None, text: str) -> list[str]:
    seg = Segmenter(SegmenterPolicy(min_text_length=5))
    out = [s.text for s in seg.push("Hello ", 0.0)]  # the first segment: never limited
    seg.limit_chars = limit
    out += [s.text for s in seg.push(text, 0.0)]
    return out + [s.text for s in seg.flush()]


def test_limit_cuts_a_long_sentence_at_a_word_boundary() -> None:
    text = "the package left our warehouse on Tuesday and should arrive by Friday. "
    assert _limited(None, text) == ["Hello ", text]
    cut = _limited(20, text)
    assert cut[0] == "Hello "
    assert "".join(cut) == "Hello " + text
    assert all(len(piece) <= 20 + 10 for piece in cut[1:-1]), cut  # at the first boundary past it
    assert len(cut) > 3


def test_limit_prefers_a_clause_end_in_its_second_half() -> None:
    text = "we looked at it, and it should arrive by Friday. "
    assert _limited(24, text)[1] == "we looked at it, "  # 17 chars: in the second half


def test_a_sentence_end_before_the_limit_still_cuts() -> None:
    assert _limited(100, "Short one. Another one. ")[1:] == ["Short one. ", "Another one. "]


def test_a_lowered_limit_cuts_the_words_already_buffered() -> None:
    # Regression: the limit only applied at boundaries scanned after it was set, so text
    # buffered under a higher limit went out whole at its sentence end, however late
    # (four LLM streams starting at once: two listeners ran dry).
    seg = Segmenter(SegmenterPolicy(min_text_length=5))
    assert [s.text for s in seg.push("Hello ", 0.0)] == ["Hello "]
    seg.limit_chars = 500
    assert seg.push("the package left our warehouse on", 0.0) == []
    seg.limit_chars = 12
    out = [s.text for s in seg.cut_to_limit() + seg.push(" Tuesday. ", 0.0)]
    assert out[0] == "the package "
    assert "".join(out) == "the package left our warehouse on Tuesday. "
    assert all(s.strip() for s in out)


def test_has_words_counts_the_whole_words_buffered() -> None:
    seg = Segmenter(SegmenterPolicy(min_text_length=1))

    def words() -> int:  # the most n for which has_words(n) holds
        return next(n for n in range(10) if not seg.has_words(n + 1))

    seg.push("Hello ", 0.0)  # the first segment takes it
    assert words() == 0 and not seg.phrase_buffered
    seg.push("there my fri", 0.1)
    assert words() == 2  # "fri" is still being typed
    seg.push("end  and", 0.2)
    assert words() == 3 and not seg.phrase_buffered
    seg.push(", ", 0.3)
    assert words() == 4 and seg.phrase_buffered
    seg.flush_words()
    assert words() == 0
    seg.push("你好，世界", 0.4)
    assert words() == 1 and seg.phrase_buffered
    assert seg.idle_deadline_s() == pytest.approx(0.5)  # the phrase hold's silence bound
