"""How text arrives at the server in the quality benchmark, and where its cuts fall.

An ``ArrivalMode`` turns a paragraph into a schedule of messages, each ``(text, seconds
until the next message)``; the texts of a schedule joined are the paragraph:

* ``whole``: the paragraph in one message;
* ``llm_33ms`` / ``llm_150ms``: one word per message, its leading space included, as
  LLM tokens arrive, every 33 ms or 150 ms;
* ``typist_80ms``: one character per message every 80 ms, with a 0.6 s pause after the
  first space once 40 characters were typed since the last pause.

A cut (a segment end other than the text's last) is *in-sentence* unless the text before
it ends with a newline or, less trailing spaces and closing quotes or brackets, with ``.``,
``!``, ``?`` or ``…``. Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from speakstream.client.pacing import tokens

Messages = list[tuple[str, float]]  # (text of one message, seconds until the next one)


@dataclass(frozen=True, slots=True)
class ArrivalMode:
    name: str
    label: str  # how the README table names it
    messages: Callable[[str], Messages]


def whole_messages(text: str) -> Messages:
    return [(text, 0.0)]


def word_token_messages(text: str, gap_s: float) -> Messages:
    """One message per word, its leading space included (as LLM tokens arrive)."""
    return tokens(text, 1.0 / gap_s)


def typist_messages(
    text: str, char_gap_s: float = 0.080, pause_every_chars: int = 40, pause_s: float = 0.6
) -> Messages:
    """One character per message; a pause after the first space once ``pause_every_chars``
    characters were typed since the last pause."""
    messages: Messages = []
    since_pause = 0
    for ch in text:
        since_pause += 1
        gap_s = char_gap_s
        if ch == " " and since_pause >= pause_every_chars:
            gap_s += pause_s
            since_pause = 0
        messages.append((ch, gap_s))
    return messages


MODES: tuple[ArrivalMode, ...] = (
    ArrivalMode("whole", "whole paragraph in one message", whole_messages),
    ArrivalMode(
        "llm_33ms", "word tokens every 33 ms", lambda text: word_token_messages(text, 0.033)
    ),
    ArrivalMode(
        "llm_150ms", "word tokens every 150 ms", lambda text: word_token_messages(text, 0.150)
    ),
    ArrivalMode("typist_80ms", "typist 80 ms/char, pauses", typist_messages),
)

_CLOSERS = "\"')]}»\u201d\u2019"
_SENTENCE_ENDS = ".!?\u2026\n"


def is_sentence_end(text_before_cut: str) -> bool:
    """Whether a cut right after ``text_before_cut`` falls between sentences."""
    if text_before_cut.endswith("\n"):
        return True
    tail = text_before_cut.rstrip(" \t\r").rstrip(_CLOSERS)
    return bool(tail) and tail[-1] in _SENTENCE_ENDS


def in_sentence_cuts(text: str, segment_ends: Sequence[int]) -> int:
    """How many of the cuts (every segment end but the text's last) fall inside a sentence."""
    cuts = [end for end in segment_ends if 0 < end < len(text.rstrip())]
    return sum(1 for end in cuts if not is_sentence_end(text[:end]))
