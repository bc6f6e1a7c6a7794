"""Engines by name, imported only when asked for (Piper pulls in onnxruntime)."""

from __future__ import annotations

import importlib

from speakstream.engines.base import Engine, EngineLoadError, EngineSettings

_ENGINES: dict[str, str] = {
    "piper": "speakstream.engines.piper:PiperEngine",
    "fake": "speakstream.engines.fake:FakeEngine",
    "chatterbox": "speakstream.engines.chatterbox.engine:ChatterboxEngine",
}
ENGINE_NAMES = tuple(_ENGINES)


def load_engine(name: str, settings: EngineSettings) -> Engine:
    target = _ENGINES.get(name)
    if target is None:
        raise EngineLoadError(f"unknown engine {name!r}; available: {', '.join(ENGINE_NAMES)}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineLoadError(f"engine {name!r} cannot be imported: {exc}") from exc
    engine: Engine = getattr(module, class_name)(settings)
    return engine
