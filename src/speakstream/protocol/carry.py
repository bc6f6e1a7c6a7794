"""Context-carrying synthesis, the text side: which words around a segment the engine hears.

A segment cut inside a sentence, synthesized alone, is spoken as if it were a whole
sentence: its start gets a sentence's onset, its end a sentence's final fall and
lengthening. So the engine is given, around the segment's own text, the words of the same
sentence just before it (``left``: already spoken, at most ``left_words`` of them) and the
words just after it that have already arrived (``right``: at most ``right_words``, only
words known to be complete; none yet: a neutral ``filler`` word, so that its last word is
not said as the end of a sentence), and only the segment's own audio is kept (``audio/span.py``
cuts it at word boundaries). Measured on the bundled Piper voice (whole paragraph vs. a
cut after a sentence's first words, mel-cepstral distance to Piper's own whole-paragraph
output): a plain cut costs 0.7 to 2.4 dB, carrying 8 words left and 2 right gives back
most of it; 8 left words get nearly all that the whole left part gets. With a segment per
word (a typist), 8 words left and the filler "and" right took a paragraph from 30 to 24.1
dB (floor 12.4; "the" was as good but espeak joins it to "in", "of", "on"...).

Context never crosses a sentence end (what is before it was spoken with its own final
intonation anyway) and is only added where the cut is plain: right words only when the
segment ends without punctuation (a clause mark already tells the engine to go on), left
words only when the text before it did not end a sentence. And only as much as the
engine can afford (``affordable``): context never delays audio past the listener's
deadline or a first segment past its budget, and under load (``max_load``) it is left out
for the others' sake (measured on the virtual clock, ``tests/load_sim.py``: carrying under
load took the LLM-paced listeners served without an underrun from 12 to 8 at most).
Pure functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from speakstream.protocol.listener import EngineSpeed
from speakstream.segmenter import Boundary, boundary_after

_TOKEN = re.compile(r"\S+\s*")
_SENTENCE_ENDS = frozenset({Boundary.SENTENCE, Boundary.PARAGRAPH})


@dataclass(frozen=True, slots=True)
class CarryPolicy:
    """How many words of context the engine hears on each side (0: none)."""

    left_words: int = 8
    right_words: int = 2
    # said after a segment cut inside a sentence when no word after it has arrived yet,
    # so that its last word is not spoken as the end of a sentence ("": none)
    filler: str = "and"
    max_chars_per_side: int = 80  # a bound on extra engine work, whatever the words
    # context words cost engine time the other listeners need: while the engine's load
    # (``Capacity.load``) is above this and others' work is in its pool, none are said
    max_load: float = 0.3

    @property
    def enabled(self) -> bool:
        return self.left_words > 0 or self.right_words > 0


@dataclass(frozen=True, slots=True)
class Carried:
    left: str = ""
    right: str = ""


NO_CONTEXT = Carried()


def left_context(before: str, policy: CarryPolicy, *, starts_text: bool) -> str:
    """The end of ``before`` (the text just before a segment) that belongs to the
    segment's sentence: at most ``left_words`` whole words and ``max_chars_per_side``
    characters. ``starts_text``: ``before`` begins at the start of the context's text (its
    first word is whole); otherwise its first token may be a fragment and is not used."""
    if policy.left_words <= 0 or not before or boundary_after(before) in _SENTENCE_ENDS:
        return ""
    tokens = list(_TOKEN.finditer(before))
    if not starts_text and tokens and tokens[0].start() == 0:
        tokens = tokens[1:]  # may be the tail of a longer word
    start = len(before)
    for words, token in enumerate(reversed(tokens)):
        if words == policy.left_words or len(before) - token.start() > policy.max_chars_per_side:
            break
        if words > 0 and boundary_after(token.group()) in _SENTENCE_ENDS:
            break
        start = token.start()
    return before[start:]


def right_context(
    segment_text: str,
    after: str,
    policy: CarryPolicy,
    *,
    text_complete: bool,
    more_expected: bool = False,
) -> str:
    """The beginning of ``after`` (the text that has arrived after a segment) to say after
    it: only when the segment ends without punctuation, at most ``right_words`` words,
    each known to be complete (followed by whitespace, or ``text_complete``: no more text
    will come), stopping after a word that ends the sentence. None of them yet, while
    ``more_expected`` (the segment was cut only because the listener needed audio, not by
    a flush or the end): the ``filler``."""
    if policy.right_words <= 0 or boundary_after(segment_text) is not Boundary.WORD:
        return ""
    if not segment_text[-1:].isspace():
        return ""  # the segment ends inside a word (a cut of an over-long token)
    words = _complete_words(after, policy, text_complete=text_complete)
    if not words and more_expected and not text_complete:
        return policy.filler
    return words


def _complete_words(after: str, policy: CarryPolicy, *, text_complete: bool) -> str:
    end = 0
    for words, token in enumerate(_TOKEN.finditer(after), start=1):
        complete = token.group()[-1:].isspace() or (text_complete and token.end() == len(after))
        if not complete or token.end() > policy.max_chars_per_side:
            break
        end = token.end()
        if words == policy.right_words or boundary_after(token.group()) is not Boundary.WORD:
            break
    return after[:end].rstrip()


def affordable(carried: Carried, speed: EngineSpeed, slack_ms: float) -> Carried:
    """``carried`` as far as the engine can say it in ``slack_ms`` on top of the segment
    (forecast from its measured speed): both sides, else the left one (it shapes more of
    the segment), else the right one, else none. Context never makes audio late: a
    segment already behind its listener's deadline, or a first segment with its budget
    spent, is said alone."""
    per_char_ms = speed.ms_per_char
    for option in (carried, Carried(left=carried.left), Carried(right=carried.right)):
        if per_char_ms * (len(option.left) + len(option.right)) <= slack_ms:
            return option
    return NO_CONTEXT
