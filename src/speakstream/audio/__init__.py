"""Audio pipeline: PCM chunk type and encoders."""

from speakstream.audio.encoders import ENCODINGS, Encoder, UnsupportedFormatError, create_encoder
from speakstream.audio.pcm import PcmChunk

__all__ = ["ENCODINGS", "Encoder", "PcmChunk", "UnsupportedFormatError", "create_encoder"]
