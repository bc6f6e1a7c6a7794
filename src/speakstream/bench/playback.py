"""A listener playing a context's audio in real time, and how late it hears each word.

``Playback`` places each audio chunk on the wall clock as a listener would play it: from
the first chunk's arrival (plus a jitter buffer's ``start_delay_ms``), each chunk right
after the previous one, or when it arrives if the listener has run out of audio by then
(a gap, an underrun: ``gaps``, the load benchmark's measure too). ``at_s``
maps a position in the context's audio (ms, the clock of the ``alignment`` events) to
the moment it is heard. ``word_lags_ms``: for each word, from the moment its last
character was sent to the moment the listener starts hearing it. Pure; no I/O.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from speakstream.client.pacing import SentAt, sent_by


class Playback:
    def __init__(self, chunks: Iterable[tuple[float, float]], start_delay_ms: float = 0.0) -> None:
        """``chunks``: (arrival time s, duration ms), in the order they are played."""
        self._starts_s: list[float] = []  # when each chunk starts playing
        self._positions_ms: list[float] = []  # where each chunk starts in the audio
        self.gaps: list[float] = []  # each wait (ms) for the next chunk after the start
        cursor_s: float | None = None  # where the playhead is when the audio runs out
        position_ms = 0.0
        for received_s, duration_ms in chunks:
            if cursor_s is None:
                cursor_s = received_s + start_delay_ms / 1000.0
            if received_s > cursor_s:
                self.gaps.append(1000.0 * (received_s - cursor_s))
            start_s = max(cursor_s, received_s)
            if duration_ms > 0:
                self._starts_s.append(start_s)
                self._positions_ms.append(position_ms)
                position_ms += duration_ms
            cursor_s = start_s + duration_ms / 1000.0
        self.audio_ms = position_ms

    @property
    def gaps_ms(self) -> float:
        """The listener's silence in all, after the start, waiting for audio."""
        return sum(self.gaps)

    def at_s(self, position_ms: float) -> float | None:
        """When the listener hears ``position_ms`` of the audio (None: no such audio)."""
        if not self._starts_s or not 0.0 <= position_ms <= self.audio_ms:
            return None
        i = max(0, bisect.bisect_right(self._positions_ms, position_ms) - 1)
        return self._starts_s[i] + (position_ms - self._positions_ms[i]) / 1000.0


def word_lags_ms(
    words: Sequence[Mapping[str, Any]], sent_at: SentAt, playback: Playback
) -> list[float]:
    """Per word of the ``alignment`` events (``end``: its end offset in the text,
    ``start_ms``: where it starts in the audio), from its last character sent to the
    listener hearing its start."""
    lags: list[float] = []
    for word in words:
        sent_s = sent_by(sent_at, int(word["end"]))
        heard_s = playback.at_s(float(word["start_ms"]))
        if sent_s is not None and heard_s is not None:
            lags.append(1000.0 * (heard_s - sent_s))
    return lags
