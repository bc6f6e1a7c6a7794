"""Speech engines behind one small protocol, loaded lazily by name."""

from speakstream.engines.base import (
    Engine,
    EngineCapabilities,
    EngineLoadError,
    EngineSettings,
    SynthesisOptions,
    VoiceInfo,
)
from speakstream.engines.registry import ENGINE_NAMES, load_engine

__all__ = [
    "ENGINE_NAMES",
    "Engine",
    "EngineCapabilities",
    "EngineLoadError",
    "EngineSettings",
    "SynthesisOptions",
    "VoiceInfo",
    "load_engine",
]
