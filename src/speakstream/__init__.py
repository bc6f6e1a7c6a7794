"""speakstream: a streaming text-to-speech server (text in pieces in, speech in pieces out)."""

from speakstream.protocol import PROTOCOL_VERSION
from speakstream.version import __version__

__all__ = ["PROTOCOL_VERSION", "__version__", "connect"]


def __getattr__(name: str) -> object:
    # ``speakstream.connect`` without importing the client (websockets) for the server.
    if name == "connect":
        from speakstream.client import connect

        return connect
    raise AttributeError(f"module 'speakstream' has no attribute {name!r}")
