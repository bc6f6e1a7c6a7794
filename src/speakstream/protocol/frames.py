"""Binary audio frame header of the native protocol.

Every audio frame the server sends is one binary WebSocket message: a fixed 16-byte
little-endian header followed by the encoded audio payload.

| offset | size | field       | meaning                                                     |
|-------:|-----:|-------------|-------------------------------------------------------------|
| 0      | 2    | magic       | ``b"SS"``                                                   |
| 2      | 1    | version     | header version, ``1``                                       |
| 3      | 1    | flags       | bit 0: last frame of its segment                            |
| 4      | 4    | stream      | context's stream number (named in its ``segment`` events)   |
| 8      | 4    | segment     | segment sequence number within the context, from 0          |
| 12     | 4    | frame       | frame sequence number within the context, from 0, no gaps   |
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from speakstream.protocol.errors import SpeakstreamError

MAGIC = b"SS"
HEADER_VERSION = 1
FLAG_SEGMENT_END = 0x01

_HEADER = struct.Struct("<2sBBIII")
HEADER_SIZE = _HEADER.size


class FrameError(SpeakstreamError, ValueError):
    """A binary frame that is not a valid speakstream audio frame."""


@dataclass(frozen=True, slots=True)
class AudioFrameHeader:
    stream: int
    segment: int
    frame: int
    segment_end: bool = False

    def pack(self) -> bytes:
        flags = FLAG_SEGMENT_END if self.segment_end else 0
        return _HEADER.pack(MAGIC, HEADER_VERSION, flags, self.stream, self.segment, self.frame)


def pack_audio_frame(header: AudioFrameHeader, payload: bytes) -> bytes:
    return header.pack() + payload


def unpack_audio_frame(data: bytes) -> tuple[AudioFrameHeader, bytes]:
    if len(data) < HEADER_SIZE:
        raise FrameError(f"audio frame of {len(data)} bytes is shorter than its header")
    magic, version, flags, stream, segment, frame = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FrameError("audio frame does not start with b'SS'")
    if version != HEADER_VERSION:
        raise FrameError(f"unsupported audio frame version {version}")
    header = AudioFrameHeader(stream, segment, frame, bool(flags & FLAG_SEGMENT_END))
    return header, data[HEADER_SIZE:]
