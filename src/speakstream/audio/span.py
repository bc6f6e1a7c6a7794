"""Context-carrying synthesis, the audio side: keep only a segment's own words.

The engine spoke ``left + segment + right`` (see ``protocol/carry.py``); ``keep_span``
keeps the audio of the characters ``[start_char, end_char)``, cut at word boundaries from
the engine's word timings. Each cut goes at the quietest 5 ms in the half of the gap (the timed
space between the last context word and the first kept one, or the last kept word and the
first context word after it) next to the kept word, and at most ``max_leak_ms`` from it,
widened by ``search_ms`` into it (phoneme timings are frame-exact, the sound of a word's
edge is not): what is kept of the gap is at most half of it and ``max_leak_ms``; the seams
(``audio/seams.py``) then fade both ends. The kept chunks' word timings are rebased to the
segment's text and to the kept audio. Chunks (sentences) wholly in the context are
dropped; once a chunk past the span starts, the engine is not asked for more.

Chunks without word timings cannot be cut: one that comes while the span is open is kept
whole, any other is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from speakstream.audio.pcm import FloatArray, PcmChunk, WordTiming

_WINDOW_MS = 5.0


def quietest_point(samples: FloatArray, lo: int, hi: int, rate_hz: int) -> int:
    """The sample index in ``[lo, hi]`` at the centre of the quietest 5 ms window."""
    lo, hi = max(0, lo), min(samples.size, hi)
    window = max(1, int(_WINDOW_MS * rate_hz / 1000))
    if hi - lo <= window:
        return max(0, min(samples.size, (lo + hi) // 2))
    power = samples[lo:hi].astype(np.float64) ** 2
    energy = np.convolve(power, np.ones(window), mode="same")
    return lo + int(np.argmin(energy))


def _to_samples(ms: float, rate_hz: int) -> int:
    return round(ms * rate_hz / 1000.0)


def keep_span(
    chunks: Iterable[PcmChunk],
    start_char: int,
    end_char: int,
    search_ms: float = 8.0,
    max_leak_ms: float = 30.0,
) -> Iterator[PcmChunk]:
    """The audio of ``[start_char, end_char)`` of the spoken text, word timings rebased."""
    started = False
    for chunk in chunks:
        words = chunk.words
        if not words:
            if started:
                yield chunk
            continue
        kept = [w for w in words if w.start_char >= start_char and w.end_char <= end_char]
        before = [w for w in words if w.end_char <= start_char and w not in kept]
        after = [w for w in words if w.start_char >= end_char and w not in kept]
        if not kept:
            if after and not before:
                return  # past the span: nothing more to synthesize
            continue
        started = True
        rate = chunk.sample_rate_hz
        samples = chunk.samples
        search = _to_samples(search_ms, rate)
        leak = _to_samples(max_leak_ms, rate)
        lo = 0
        if before:
            gap_lo = _to_samples(before[-1].end_ms, rate)
            gap_hi = _to_samples(kept[0].start_ms, rate)
            gap_hi = max(gap_lo, gap_hi)
            nearest = max((gap_lo + gap_hi) // 2, gap_hi - leak)
            lo = quietest_point(samples, nearest, gap_hi + search, rate)
        hi = samples.size
        if after:
            gap_lo = _to_samples(kept[-1].end_ms, rate)
            gap_hi = _to_samples(after[0].start_ms, rate)
            gap_hi = max(gap_lo, gap_hi)
            nearest = min((gap_lo + gap_hi) // 2, gap_lo + leak)
            hi = quietest_point(samples, gap_lo - search, nearest, rate)
        hi = max(hi, lo)
        shift_ms = -1000.0 * lo / rate
        limit_ms = 1000.0 * (hi - lo) / rate
        rebased = tuple(_rebase(w.shifted(shift_ms, limit_ms), start_char) for w in kept)
        yield PcmChunk(np.ascontiguousarray(samples[lo:hi]), rate, rebased)
        if after:
            return


def _rebase(word: WordTiming, start_char: int) -> WordTiming:
    return WordTiming(
        word.start_char - start_char, word.end_char - start_char, word.start_ms, word.duration_ms
    )
