"""A scripted engine for timing and fault tests: deterministic tones, no model.

Never used in place of Piper in an end-to-end test. Options (``EngineSettings.options``):
``ms_per_char`` of audio, ``synthesis_s_per_char`` of (sleeping) work, ``fail_on``
(text containing it raises), ``hang_on`` (text containing it blocks for ``hang_s``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from speakstream.audio.pcm import PcmChunk
from speakstream.engines.base import EngineCapabilities, EngineSettings, SynthesisOptions, VoiceInfo

FAKE_SAMPLE_RATE_HZ = 16_000


class FakeEngine:
    def __init__(self, settings: EngineSettings) -> None:
        opts = settings.options
        self.ms_per_char = float(opts.get("ms_per_char", 60.0))
        self.synthesis_s_per_char = float(opts.get("synthesis_s_per_char", 0.0))
        self.chunk_ms = float(opts.get("chunk_ms", 200.0))
        self.fail_on = str(opts.get("fail_on", "\x00fail"))
        self.hang_on = str(opts.get("hang_on", "\x00hang"))
        self.hang_s = float(opts.get("hang_s", 5.0))
        self._caps = EngineCapabilities(
            engine="fake",
            voices=(
                VoiceInfo("fake-a", FAKE_SAMPLE_RATE_HZ, "en"),
                VoiceInfo("fake-b", FAKE_SAMPLE_RATE_HZ, "en"),
            ),
            default_voice=settings.default_voice or "fake-a",
            streams_within_sentence=True,
            word_timings=False,
        )

    @property
    def capabilities(self) -> EngineCapabilities:
        return self._caps

    def synthesize(self, text: str, voice: str, options: SynthesisOptions) -> Iterator[PcmChunk]:
        if self.fail_on in text:
            raise RuntimeError("scripted engine failure")
        if self.hang_on in text:
            time.sleep(self.hang_s)
        speakable = sum(ch.isalnum() for ch in text)
        if not speakable:
            return
        total_ms = speakable * self.ms_per_char / options.speed
        total = int(total_ms * FAKE_SAMPLE_RATE_HZ / 1000)
        per_chunk = max(1, int(self.chunk_ms * FAKE_SAMPLE_RATE_HZ / 1000))
        freq_hz = 220.0 if voice == "fake-a" else 330.0
        for start in range(0, total, per_chunk):
            n = min(per_chunk, total - start)
            if self.synthesis_s_per_char:
                time.sleep(self.synthesis_s_per_char * speakable * n / total)
            t = (np.arange(start, start + n, dtype=np.float32)) / FAKE_SAMPLE_RATE_HZ
            yield PcmChunk(
                (0.3 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32), FAKE_SAMPLE_RATE_HZ
            )

    def close(self) -> None:
        return None
