"""speakstream: a streaming text-to-speech server (text in pieces in, speech in pieces out)."""

__version__ = "0.1.0"

PROTOCOL_VERSION = 1

__all__ = ["PROTOCOL_VERSION", "__version__", "connect"]


def __getattr__(name: str) -> object:
    # ``speakstream.connect`` without importing the client (websockets) for the server.
    if name == "connect":
        from speakstream.client import connect

        return connect
    raise AttributeError(f"module 'speakstream' has no attribute {name!r}")
