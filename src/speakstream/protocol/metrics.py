"""The per-context metrics record, reported in ``done``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class ContextMetrics:
    created_s: float
    first_text_s: float | None = None
    first_segment_s: float | None = None
    first_audio_s: float | None = None
    characters: int = 0
    segments: int = 0
    audio_ms: float = 0.0
    synthesis_ms: float = 0.0
    queue_ms: float = 0.0
    stalls: int = 0  # times the listener ran dry waiting for audio that was due
    stall_ms: float = 0.0  # the silence of those stalls, in all

    def record(self, now_s: float) -> dict[str, Any]:
        """The ``done`` metrics: times from the first text (from the context's opening if
        it had none); a time of something that never happened (no segment, no audio) and
        the real-time factor of no audio are None (null)."""
        origin_s = self.created_s if self.first_text_s is None else self.first_text_s

        def since_first_text(t: float | None) -> float | None:
            return None if t is None else round(1000.0 * (t - origin_s), 3)

        return {
            "ttfa_ms": since_first_text(self.first_audio_s),
            "first_segment_ms": since_first_text(self.first_segment_s),
            "synthesis_ms": round(self.synthesis_ms, 3),
            "queue_ms": round(self.queue_ms, 3),
            "audio_ms": round(self.audio_ms, 3),
            "rtf": round(self.synthesis_ms / self.audio_ms, 4) if self.audio_ms else None,
            "characters": self.characters,
            "segments": self.segments,
            "duration_ms": since_first_text(now_s),
            "stalls": self.stalls,
            "stall_ms": round(self.stall_ms, 3),
        }
