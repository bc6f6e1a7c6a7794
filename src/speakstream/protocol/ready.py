"""The ``ready`` greeting: protocol version, the defaults a context gets, and the limits.

Built from the session's configuration; the chunking defaults come from the same option
declarations that ``start`` is parsed with (``protocol.options``). The voice list
(``capabilities.voices``) is made when the greeting is sent, from ``config.voices``: a
voice added while the server runs (an upload, ``POST /v1/voices``) is listed, with its
rate and the language of the default voice (the engine's); the engine's own voices keep
the entries the server gave in ``ready_info``.
"""

from __future__ import annotations

from typing import Any

from speakstream.protocol import PROTOCOL_VERSION
from speakstream.protocol.options import chunking_defaults
from speakstream.protocol.outputs import SessionConfig
from speakstream.protocol.server_messages import Ready


def ready_message(config: SessionConfig) -> Ready:
    settings = {
        "voice": config.default_voice,
        "encoding": config.default_encoding,
        "sample_rate_hz": config.voices[config.default_voice],
        **chunking_defaults(config.policy),
        "immediate_send": config.immediate_send,
    }
    limits = {
        "max_contexts": config.max_contexts,
        "max_text_chars": config.max_text_chars,
        "max_buffered_chars": config.max_buffered_chars,
    }
    info = dict(config.ready_info)
    capabilities = info.get("capabilities")
    if isinstance(capabilities, dict) and isinstance(capabilities.get("voices"), list):
        info["capabilities"] = {
            **capabilities,
            "voices": voice_list(config, capabilities["voices"]),
        }
    return Ready(PROTOCOL_VERSION, settings, limits, info)


def voice_list(config: SessionConfig, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every voice of ``config.voices``: its entry in ``listed`` (the engine's), else a
    new one with the default voice's language."""
    known = {entry.get("name"): entry for entry in listed}
    language = known.get(config.default_voice, {}).get("language")
    return [
        known.get(name) or {"name": name, "sample_rate_hz": rate_hz, "language": language}
        for name, rate_hz in config.voices.items()
    ]
