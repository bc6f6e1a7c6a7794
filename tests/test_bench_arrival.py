"""arrival: message schedules of the quality benchmark and where cuts fall."""

from __future__ import annotations

import pytest

from speakstream.bench.arrival import (
    MODES,
    ArrivalMode,
    in_sentence_cuts,
    is_sentence_end,
    typist_messages,
    word_token_messages,
)


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        ("It is late.", True),
        ("It is late. ", True),
        ("Really?", True),
        ("Watch out!", True),
        ("And then…", True),
        ('"Are you coming?" ', True),
        ("(as planned.)", True),
        ("First line\n", True),
        ("It is late", False),
        ("Although the committee had debated,", False),
        ("three items:", False),
        ("$24.99", False),
        ("", False),
    ],
)
def test_is_sentence_end(before: str, expected: bool) -> None:
    assert is_sentence_end(before) is expected


def test_in_sentence_cuts_counts_only_cuts_inside_sentences() -> None:
    text = "One two three. Four five, six seven! Eight."
    ends = [len("One two"), len("One two three. "), len("One two three. Four five,"), len(text)]
    assert (
        in_sentence_cuts(text, ends) == 2
    )  # after "two" and after "five,"; the last end is no cut
    assert in_sentence_cuts(text, [len(text)]) == 0


def test_word_tokens_rebuild_the_text_with_one_word_each() -> None:
    text = "Hello there, how are you?"
    messages = word_token_messages(text, 0.15)
    assert "".join(t for t, _ in messages) == text
    assert len(messages) == 5
    assert {gap for _, gap in messages} == {0.15}


def test_typist_types_one_character_at_a_time_and_pauses_at_spaces() -> None:
    text = " ".join(["word"] * 40)
    messages = typist_messages(text, char_gap_s=0.08, pause_every_chars=40, pause_s=0.6)
    assert [t for t, _ in messages] == list(text)
    pauses = [i for i, (_, gap) in enumerate(messages) if gap > 0.08]
    assert pauses and all(text[i] == " " for i in pauses)
    assert all(b - a >= 40 for a, b in zip([-1, *pauses], pauses, strict=False))
    assert len(pauses) == pytest.approx(len(text) / 40, abs=1)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.name)
def test_every_mode_delivers_the_whole_text_exactly_once(mode: ArrivalMode) -> None:
    text = 'She said, "Fine." Then: 3 items, $4.50 each!'
    assert "".join(t for t, _ in mode.messages(text)) == text
