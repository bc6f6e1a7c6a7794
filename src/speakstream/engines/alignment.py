"""Word timings from phoneme timings: which words of the text each stretch of audio says.

Piper reports, per sentence it synthesizes, how many samples each phoneme lasts. Phonemes
come grouped in words (separated by a space phoneme), but not one group per word of the
text: "$29.95" is six spoken words, "a.m." one, "—" none. So each text token is first
phonemized alone to learn how many spoken words it becomes, and tokens then take that many
phoneme words in order. espeak joins some neighbours into one spoken word ("in the" is
one word); ``merges(token, next_token)`` says so (with the share of the joint word that
belongs to the first), and the two tokens split that word instead of every later word
shifting. Where the count still differs, the chunk's tokens share its words in
proportion. Offsets are into the text as given, never a normalized copy.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from speakstream.audio.pcm import WordTiming

_TOKEN = re.compile(r"\S+")
_PAUSE_PHONEMES = frozenset(",.!?;:—…-\"'()")
_BOUNDARY_PHONEMES = frozenset("^$_")


@dataclass(frozen=True, slots=True)
class SpokenWord:
    start_sample: int
    end_sample: int


def spoken_words(phonemes: Sequence[tuple[str, int]]) -> list[SpokenWord]:
    """Group (phoneme, samples) into spoken words; pauses and edges are not word time."""
    words: list[SpokenWord] = []
    position = 0
    start: int | None = None
    end = 0
    for phoneme, samples in phonemes:
        if phoneme == " ":
            if start is not None:
                words.append(SpokenWord(start, end))
                start = None
        elif phoneme not in _PAUSE_PHONEMES and phoneme not in _BOUNDARY_PHONEMES:
            if start is None:
                start = position
            end = position + samples
        position += samples
    if start is not None:
        words.append(SpokenWord(start, end))
    return words


class WordAligner:
    """Maps a segment's tokens onto the spoken words of its chunks, chunk by chunk."""

    def __init__(
        self,
        text: str,
        count_words: Callable[[str], int],
        merges: Callable[[str, str], float | None] | None = None,
    ) -> None:
        self.tokens = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
        # spoken words per token; fractional where two tokens share one spoken word
        self.expected: list[float] = [float(count_words(text[s:e])) for s, e in self.tokens]
        if merges is not None:
            for i in range(len(self.tokens) - 1):
                if self.expected[i] < 1 or self.expected[i + 1] < 1:
                    continue
                (s1, e1), (s2, e2) = self.tokens[i], self.tokens[i + 1]
                share = merges(text[s1:e1], text[s2:e2])
                if share is not None:
                    self.expected[i] -= 1.0 - share
                    self.expected[i + 1] -= share
        self._next = 0

    def align(
        self, phonemes: Sequence[tuple[str, int]], sample_rate_hz: int, last: bool
    ) -> tuple[WordTiming, ...]:
        spoken = spoken_words(phonemes)
        first = self._next
        if last:
            end = len(self.tokens)
        else:
            end, words = first, 0.0
            while end < len(self.tokens) and words < len(spoken):
                words += self.expected[end]
                end += 1
            # tokens that speak no word (dashes, stray symbols) go with the words before them
            while end < len(self.tokens) and self.expected[end] == 0:
                end += 1
        self._next = end
        tokens = range(first, end)
        if not spoken or not tokens:
            return ()
        wanted = sum(self.expected[i] for i in tokens)
        scale = len(spoken) / wanted if wanted else 0.0
        ms_per_sample = 1000.0 / sample_rate_hz

        def at(position: float) -> float:
            """Sample at a fractional spoken-word position (exact at whole words)."""
            if position >= len(spoken):
                return float(spoken[-1].end_sample)
            word = spoken[int(position)]
            return word.start_sample + (position - int(position)) * (
                word.end_sample - word.start_sample
            )

        timings: list[WordTiming] = []
        taken = 0.0
        for i in tokens:
            start = at(taken)
            taken += self.expected[i] * scale
            # a whole number of words ends at its last word's end, not the next one's start
            whole = abs(taken - round(taken)) < 1e-9
            stop = spoken[round(taken) - 1].end_sample if whole and taken >= 1 else at(taken)
            stop = max(start, stop)
            s, e = self.tokens[i]
            timings.append(WordTiming(s, e, start * ms_per_sample, (stop - start) * ms_per_sample))
        return tuple(timings)
