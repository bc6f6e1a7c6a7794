"""The PCM chunk that flows from engines to encoders."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class PcmChunk:
    """Mono float32 samples in [-1, 1] at ``sample_rate_hz``."""

    samples: FloatArray
    sample_rate_hz: int

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
