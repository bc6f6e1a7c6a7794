"""speakstream: a streaming text-to-speech server (text in pieces in, speech in pieces out)."""

__version__ = "0.1.0"

PROTOCOL_VERSION = 1

__all__ = ["PROTOCOL_VERSION", "__version__"]
