"""Seamless joins between separately synthesized segments.

Each engine chunk (Piper: one sentence) is cleaned before it is queued: non-finite samples
zeroed (NaN) or clipped (infinities), a real DC offset removed (a chunk's mean of at least
``dc_offset_threshold``; speech's own small asymmetry is left alone, since subtracting it
would put an offset into the silences),
the engine's own leading and trailing silence trimmed (keeping a short margin), short
fades at both ends so a cut can never click, the context's volume applied, and a pause
put in front that matches the punctuation that ended the text before it: none inside a
sentence, short after a clause, longer after a sentence or a paragraph. The result: the
listener hears the pauses of the text, not the places where the server cut it. A chunk
marked ``continues`` (an engine streaming one sentence in pieces, Chatterbox) is joined to
the next as it is: neither trimmed, faded nor paused at that join, nor its DC removed
(which would step at the join).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from speakstream.audio.pcm import FloatArray, PcmChunk
from speakstream.segmenter import Boundary


@dataclass(frozen=True, slots=True)
class SeamPolicy:
    trim_silence: bool = True
    silence_threshold: float = 0.004  # |sample| below this counts as silence (about -48 dBFS)
    # a chunk mean at least this large is an offset to remove (Piper's speech: ~0.0005)
    dc_offset_threshold: float = 0.005
    keep_before_ms: float = 15.0  # silence kept before the first loud sample
    keep_after_ms: float = 40.0  # and after the last (release of the final phoneme)
    fade_ms: float = 4.0
    # pause put before a segment, by what ended the text before it (none after a word)
    clause_pause_ms: float = 120.0
    sentence_pause_ms: float = 250.0
    paragraph_pause_ms: float = 450.0

    def pause_for(self, boundary: Boundary | str) -> float:
        if boundary == Boundary.CLAUSE:
            return self.clause_pause_ms
        if boundary == Boundary.SENTENCE:
            return self.sentence_pause_ms
        if boundary == Boundary.PARAGRAPH:
            return self.paragraph_pause_ms
        return 0.0


def _trim(
    samples: FloatArray, rate_hz: int, policy: SeamPolicy, front: bool = True, back: bool = True
) -> tuple[FloatArray, int]:
    """The samples without the engine's edge silence (at the ``front`` and ``back`` ends
    asked for), and how many were cut from the front."""
    if not (front or back):
        return samples, 0
    loud = np.flatnonzero(np.abs(samples) >= policy.silence_threshold)
    if loud.size == 0:
        return samples[:0], samples.size if front else 0
    start, end = 0, samples.size
    if front:
        start = max(0, int(loud[0]) - int(policy.keep_before_ms * rate_hz / 1000))
    if back:
        end = min(samples.size, int(loud[-1]) + 1 + int(policy.keep_after_ms * rate_hz / 1000))
    return samples[start:end], start


def _fade(
    samples: FloatArray, rate_hz: int, fade_ms: float, fade_in: bool = True, fade_out: bool = True
) -> FloatArray:
    n = min(int(fade_ms * rate_hz / 1000), samples.size // 2)
    if n <= 0:
        return samples
    ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)
    if fade_in:
        samples[:n] *= ramp
    if fade_out:
        samples[-n:] *= ramp[::-1]
    return samples


def shape_chunks(
    chunks: Iterable[PcmChunk],
    *,
    pause_before: Boundary | str,
    volume: float,
    policy: SeamPolicy,
) -> Iterator[PcmChunk]:
    """Clean each chunk of one segment; ``pause_before`` is the boundary before it."""
    boundary: Boundary | str = pause_before
    joined = False  # the chunk before said this one continues it
    for chunk in chunks:
        rate = chunk.sample_rate_hz
        samples = chunk.samples.astype(np.float32, copy=True)
        # an engine's NaN or infinity must not reach an encoder (or a listener's ears)
        np.nan_to_num(samples, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
        if (
            samples.size
            and not (joined or chunk.continues)
            and abs(mean := float(samples.mean())) >= policy.dc_offset_threshold
        ):
            samples -= np.float32(mean)
        cut_front = 0
        if policy.trim_silence:
            samples, cut_front = _trim(samples, rate, policy, not joined, not chunk.continues)
        samples = _fade(samples, rate, policy.fade_ms, not joined, not chunk.continues)
        if volume != 1.0:
            samples = np.clip(samples * np.float32(volume), -1.0, 1.0).astype(np.float32)
        pause_ms = policy.pause_for(boundary) if policy.trim_silence and not joined else 0.0
        pause_samples = int(pause_ms * rate / 1000)
        if pause_samples:
            samples = np.concatenate([np.zeros(pause_samples, dtype=np.float32), samples])
        boundary = Boundary.SENTENCE  # the engine's next chunk is its next sentence
        joined = chunk.continues
        if samples.size:
            # Word timings follow the audio: minus what was trimmed, plus the pause.
            shift_ms = 1000.0 * (pause_samples - cut_front) / rate
            limit_ms = 1000.0 * samples.size / rate
            words = tuple(w.shifted(shift_ms, limit_ms) for w in chunk.words)
            yield PcmChunk(
                np.ascontiguousarray(samples, dtype=np.float32), rate, words, chunk.continues
            )
