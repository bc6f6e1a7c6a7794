"""What a context has said, when: word (or segment) timings on the context's audio clock.

Fed the context's text as it arrives and each chunk of audio as it is released in order,
it builds the ``alignment`` events (word and character timings in ms from the start of the
context's audio, offsets into the text as the client sent it), and answers a barge-in:
given how much audio the client played, which text was spoken and which was not.

Bounded: the text is kept as a window of its last ``max_text_chars`` characters and the
timings as the last ``max_entries`` words; a cancel that reaches further back than that
answers with what is left (``text_offset`` says where its ``spoken_text`` starts).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Timed(Protocol):
    """A word of a segment: offsets into the segment text, ms from the chunk's start."""

    @property
    def start_char(self) -> int: ...

    @property
    def end_char(self) -> int: ...

    @property
    def start_ms(self) -> float: ...

    @property
    def duration_ms(self) -> float: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    start_char: int
    end_char: int
    start_ms: float
    end_ms: float


class SpokenTimeline:
    def __init__(self, max_text_chars: int = 100_000, max_entries: int = 20_000) -> None:
        self._text = ""
        self._text_base = 0  # context offset of self._text[0]
        self._max_text_chars = max_text_chars
        self._entries: deque[_Entry] = deque(maxlen=max_entries)
        self.audio_ms = 0.0  # audio released so far: the clock of the next chunk

    def add_text(self, text: str) -> None:
        self._text += text
        excess = len(self._text) - self._max_text_chars
        if excess > 0:
            self._text = self._text[excess:]
            self._text_base += excess

    def text_between(self, start: int, end: int) -> str:
        """The context's text ``[start, end)``, as far as it is still held and has arrived."""
        lo = max(0, start - self._text_base)
        return self._text[lo : max(lo, end - self._text_base)]

    def add_audio(
        self, segment_start: int, segment_end: int, duration_ms: float, words: Sequence[Timed]
    ) -> list[dict[str, Any]]:
        """Record a released chunk; return its words on the context clock (for events)."""
        clock = self.audio_ms
        self.audio_ms += duration_ms
        if not words:
            self._entries.append(_Entry(segment_start, segment_end, clock, self.audio_ms))
            return []
        records = []
        for w in words:
            start_char, end_char = segment_start + w.start_char, segment_start + w.end_char
            start_ms, end_ms = clock + w.start_ms, clock + w.start_ms + w.duration_ms
            self._entries.append(_Entry(start_char, end_char, start_ms, end_ms))
            records.append(
                {
                    "word": self.text_between(start_char, end_char),
                    "start": start_char,
                    "end": end_char,
                    "start_ms": round(start_ms, 2),
                    "duration_ms": round(end_ms - start_ms, 2),
                }
            )
        return records

    @staticmethod
    def characters(words: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Character timings: each word's time shared evenly among its characters."""
        chars = []
        for w in words:
            n = max(1, w["end"] - w["start"])
            share = w["duration_ms"] / n
            for i, ch in enumerate(w["word"]):
                chars.append(
                    {
                        "char": ch,
                        "offset": w["start"] + i,
                        "start_ms": round(w["start_ms"] + i * share, 2),
                        "duration_ms": round(share, 2),
                    }
                )
        return chars

    def split_at(self, played_ms: float) -> dict[str, Any]:
        """The text spoken in the first ``played_ms`` of audio, the rest, and the offset
        between them (the end of the last word heard). A word counts as heard once half of
        it has been played; without word timings, the same holds for whole segments."""
        received_end = self._text_base + len(self._text)
        split = self._entries[0].start_char if self._entries else self._text_base
        for entry in self._entries:
            if (entry.start_ms + entry.end_ms) / 2 > played_ms:
                break
            split = entry.end_char  # the end of the last word heard
        answer: dict[str, Any] = {
            "played_ms": played_ms,
            "split_offset": split,
            "spoken_text": self.text_between(self._text_base, split),
            "unspoken_text": self.text_between(split, received_end),
        }
        if self._text_base:
            answer["text_offset"] = self._text_base
        return answer
