"""The PCM chunk that flows from engines to encoders, and its one conversion to 16-bit.

``float_to_int16`` is the only float-to-integer conversion of the audio path (PCM, WAV,
G.711 and the codecs all start from it): samples clipped to [-1, 1], scaled by 32767 and
rounded half to even, so +1.0 is 32767, -1.0 is -32767 and the encodings agree sample for
sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
Int16Array = npt.NDArray[np.int16]


def float_to_int16(samples: FloatArray) -> Int16Array:
    """16-bit PCM of float samples: clipped to [-1, 1], times 32767, rounded half to even."""
    pcm: Int16Array = np.rint(np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    return pcm


@dataclass(frozen=True, slots=True)
class WordTiming:
    """A word of the segment's text spoken in a chunk: character offsets into the segment
    text, and milliseconds from the start of the chunk."""

    start_char: int
    end_char: int
    start_ms: float
    duration_ms: float

    @property
    def end_ms(self) -> float:
        return self.start_ms + self.duration_ms

    def shifted(self, by_ms: float, limit_ms: float) -> WordTiming:
        start = min(max(0.0, self.start_ms + by_ms), limit_ms)
        end = min(max(start, self.end_ms + by_ms), limit_ms)
        return WordTiming(self.start_char, self.end_char, start, end - start)


@dataclass(frozen=True, slots=True)
class PcmChunk:
    """Mono float32 samples in [-1, 1] at ``sample_rate_hz``; ``words`` when the engine
    knows which words of the segment this audio speaks (and when); ``continues`` when the
    engine's next chunk goes on with the same sentence."""

    samples: FloatArray
    sample_rate_hz: int
    words: tuple[WordTiming, ...] = ()
    # the engine's next chunk continues this one (one sentence streamed in pieces): the
    # seams join them as they are, with no trim, fade or pause between
    continues: bool = False

    def __post_init__(self) -> None:
        if self.samples.dtype != np.float32 or self.samples.ndim != 1:
            raise ValueError("PcmChunk needs a 1-D float32 array")
        if self.sample_rate_hz <= 0:
            raise ValueError("sample_rate_hz must be positive")

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.num_samples / self.sample_rate_hz

    @classmethod
    def silence(cls, duration_ms: float, sample_rate_hz: int) -> PcmChunk:
        n = round(duration_ms * sample_rate_hz / 1000.0)
        return cls(np.zeros(n, dtype=np.float32), sample_rate_hz)
