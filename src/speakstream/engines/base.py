"""The ``Engine`` protocol and the records that describe an engine."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from speakstream.audio.pcm import PcmChunk
from speakstream.protocol.errors import SpeakstreamError


class EngineLoadError(SpeakstreamError, RuntimeError):
    """An engine or voice that cannot be loaded; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class VoiceInfo:
    name: str
    sample_rate_hz: int
    language: str = ""


@dataclass(frozen=True, slots=True)
class EngineCapabilities:
    """What an engine can do, advertised to clients in ``ready``."""

    engine: str
    voices: tuple[VoiceInfo, ...]
    default_voice: str
    streams_within_sentence: bool
    word_timings: bool
    # the per-context options beyond speed it honours (``SynthesisOptions`` fields)
    options: tuple[str, ...] = ()
    # the model variant loaded, where an engine has several (Chatterbox: standard, turbo)
    variant: str = ""

    def voice(self, name: str) -> VoiceInfo | None:
        for info in self.voices:
            if info.name == name:
                return info
        return None


@dataclass(frozen=True, slots=True)
class SynthesisOptions:
    """Per-call options. ``speed`` every engine honours; the rest are for engines that
    have them (Chatterbox), None meaning the engine's configured default."""

    speed: float = 1.0
    exaggeration: float | None = None  # emotion intensity (Chatterbox)
    cfg_weight: float | None = None  # classifier-free guidance weight, 0 = none (Chatterbox)
    temperature: float | None = None  # sampling temperature (Chatterbox)
    seed: int | None = None  # sampling seed, for reproducible output (Chatterbox)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Settings every engine understands; ``options`` carries engine-specific ones."""

    default_voice: str | None = None
    voices_dir: Path | None = None
    threads: int | None = None  # None: as many as there are cores
    options: Mapping[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    """A blocking synthesizer. ``synthesize`` runs in a worker thread, never on the loop.

    It must be safe to call from several threads at once (the server shares one engine
    across all connections). The caller may stop iterating at any chunk to cancel; an
    engine that can stop sooner returns an iterator with a ``cancel()`` method (callable
    from any thread), which is called as soon as its job is cancelled.
    """

    @property
    def capabilities(self) -> EngineCapabilities: ...

    def synthesize(self, text: str, voice: str, options: SynthesisOptions) -> Iterator[PcmChunk]:
        """Yield PCM for ``text`` (which may be whitespace or punctuation only: no audio)."""
        ...

    def close(self) -> None: ...
