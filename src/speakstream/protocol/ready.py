"""The ``ready`` greeting: protocol version, the defaults a context gets, and the limits.

Built from the session's configuration; the chunking defaults come from the same option
declarations that ``start`` is parsed with (``protocol.options``).
"""

from __future__ import annotations

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
    return Ready(PROTOCOL_VERSION, settings, limits, dict(config.ready_info))
