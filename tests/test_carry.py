"""Which words around a segment the engine hears (protocol/carry.py)."""

from __future__ import annotations

from speakstream.protocol.carry import (
    NO_CONTEXT,
    Carried,
    CarryPolicy,
    affordable,
    left_context,
    right_context,
)
from speakstream.protocol.listener import EngineSpeed

POLICY = CarryPolicy(left_words=3, right_words=2, max_chars_per_side=40)


def test_left_context_is_the_last_words_of_the_same_sentence() -> None:
    before = "It rained. Have you ever "
    assert left_context(before, POLICY, starts_text=True) == "Have you ever "
    assert left_context("We waited, and then ", POLICY, starts_text=True) == "waited, and then "
    many = "One two three four five "
    assert left_context(many, POLICY, starts_text=True) == "three four five "


def test_no_left_context_after_a_sentence_end_or_when_off() -> None:
    assert left_context("It rained. ", POLICY, starts_text=True) == ""
    assert left_context("First line\n", POLICY, starts_text=True) == ""
    assert left_context("", POLICY, starts_text=True) == ""
    assert left_context("Have you ", CarryPolicy(left_words=0), starts_text=True) == ""


def test_left_context_never_starts_with_a_fragment_or_exceeds_its_bound() -> None:
    # a window that may begin inside a word: its first token is not used
    assert left_context("ndered why ", POLICY, starts_text=False) == "why "
    assert left_context("ndered why ", POLICY, starts_text=True) == "ndered why "
    long_words = "extraordinarily incomprehensibilities "
    assert left_context(long_words, CarryPolicy(max_chars_per_side=20), starts_text=True) == ""


def test_right_context_is_complete_words_already_arrived() -> None:
    assert right_context("Have you ", "ever wondered why", POLICY, text_complete=False) == (
        "ever wondered"
    )
    # "wond" may still grow: only words followed by whitespace count
    assert right_context("Have you ", "ever wond", POLICY, text_complete=False) == "ever"
    assert right_context("Have you ", "ever", POLICY, text_complete=False) == ""
    # once the text is complete its last word is whole
    assert right_context("Have you ", "ever", POLICY, text_complete=True) == "ever"


def test_right_context_stops_at_punctuation_and_only_follows_plain_cuts() -> None:
    assert right_context("Have you ", "seen it? No.", POLICY, text_complete=True) == "seen it?"
    assert right_context("Have you ", "ever, I mean", POLICY, text_complete=True) == "ever,"
    # the segment ends with punctuation: the engine already knows how it goes on
    assert right_context("Hello, ", "you there", POLICY, text_complete=True) == ""
    assert right_context("Hello. ", "You there", POLICY, text_complete=True) == ""
    # a segment cut inside an over-long token
    assert right_context("abcdef", "ghi jkl ", POLICY, text_complete=True) == ""
    assert right_context("Have ", "you ever ", CarryPolicy(right_words=0), text_complete=True) == ""
    assert right_context("Have ", "a" * 50 + " b ", POLICY, text_complete=True) == ""


def test_a_filler_stands_for_words_not_yet_here_when_more_is_expected() -> None:
    policy = CarryPolicy(filler="and")
    # cut for the listener, nothing complete after it yet: its last word is not the end
    assert right_context("Have you ", "", policy, text_complete=False, more_expected=True) == (
        "and"
    )
    assert right_context("Have you ", "ev", policy, text_complete=False, more_expected=True) == (
        "and"
    )
    # real words win over the filler
    assert right_context("Have ", "you ev", policy, text_complete=False, more_expected=True) == (
        "you"
    )
    # a flush or the end of the text may really end the sentence here: no filler
    assert right_context("Have you ", "", policy, text_complete=False) == ""
    assert right_context("Have you ", "", policy, text_complete=True, more_expected=True) == ""
    # punctuation already says how the sentence goes on; an empty filler turns it off
    assert right_context("Hello, ", "", policy, text_complete=False, more_expected=True) == ""
    off = CarryPolicy(filler="")
    assert right_context("Have you ", "", off, text_complete=False, more_expected=True) == ""


def test_context_is_cut_to_what_the_engine_can_afford() -> None:
    speed = EngineSpeed()  # its prior: 1.5 ms per character
    both = Carried(left="Have you ever ", right="turns orange")  # 14 + 12 characters
    per_char = speed.ms_per_char
    assert affordable(both, speed, 26 * per_char) == both
    assert affordable(both, speed, 14 * per_char) == Carried(left="Have you ever ")
    assert affordable(Carried(right="turns orange"), speed, 12 * per_char) == Carried(
        right="turns orange"
    )
    assert affordable(both, speed, 5 * per_char) == NO_CONTEXT
    assert affordable(both, speed, -10.0) == NO_CONTEXT  # already late: said alone
    assert affordable(both, speed, float("inf")) == both
