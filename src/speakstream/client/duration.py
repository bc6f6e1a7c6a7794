"""How much audio the payloads of one stream hold, counted as they arrive, without decoding.

``AudioClock(encoding, sample_rate_hz)``; ``add(payload)`` for each payload in order;
``audio_ms`` is the audio in what was added so far. PCM-like formats count samples (less
the WAV header). Ogg Opus reads each page's granule position (48 kHz samples, less the
pre-skip in its ``OpusHead``). MP3 walks the MPEG audio frame headers (1152 samples per
MPEG-1 Layer III frame, 576 for MPEG-2/2.5), leaving out a Xing/Info header frame. Raw
Opus packets (``opus_packets``) read each packet's TOC byte. An encoding it does not know
counts as 0 ms. Payloads may split pages and frames anywhere.
"""

from __future__ import annotations

import struct

from speakstream.audio.encoders import FORMATS

_OGG_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, type, granule, serial, seq, crc, n
_OPUS_RATE_HZ = 48000
_MP3_KBPS = {
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES_HZ = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_OPUS_FRAME_MS = (10.0, 20.0, 40.0, 60.0)  # SILK, by config % 4
_CELT_FRAME_MS = (2.5, 5.0, 10.0, 20.0)


class AudioClock:
    def __init__(self, encoding: str, sample_rate_hz: int) -> None:
        self.encoding = encoding
        self.sample_rate_hz = sample_rate_hz
        spec = FORMATS.get(encoding)
        self._width = spec.bytes_per_sample if spec is not None else None
        self._pcm_bytes = 0
        self._buffer = b""
        self._samples = 0  # mp3: samples counted; opus: granule of the last page
        self._rate_hz = sample_rate_hz
        self._pre_skip = 0
        self._packets_ms = 0.0
        self._frames_seen = 0

    @property
    def audio_ms(self) -> float:
        if self._width is not None:
            header = 44 if self.encoding == "wav" else 0
            return 1000.0 * max(0, self._pcm_bytes - header) / self._width / self.sample_rate_hz
        if self.encoding == "opus":
            return 1000.0 * max(0, self._samples - self._pre_skip) / _OPUS_RATE_HZ
        if self.encoding == "mp3":
            return 1000.0 * self._samples / self._rate_hz
        return self._packets_ms

    def add(self, payload: bytes) -> None:
        if self._width is not None:
            self._pcm_bytes += len(payload)
        elif self.encoding == "opus":
            self._buffer += payload
            self._read_ogg_pages()
        elif self.encoding == "mp3":
            self._buffer += payload
            self._read_mp3_frames()
        elif self.encoding == "opus_packets":
            self._packets_ms += _opus_packet_ms(payload)

    def _read_ogg_pages(self) -> None:
        buf = self._buffer
        while len(buf) >= _OGG_HEADER.size:
            if buf[:4] != b"OggS":
                found = buf.find(b"OggS", 1)
                buf = buf[found:] if found > 0 else buf[-3:]
                continue
            *_, granule, _serial, _seq, _crc, segments = _OGG_HEADER.unpack_from(buf)
            lacing_end = _OGG_HEADER.size + segments
            if len(buf) < lacing_end:
                break
            page_end = lacing_end + sum(buf[_OGG_HEADER.size : lacing_end])
            if len(buf) < page_end:
                break
            body = buf[lacing_end:page_end]
            if body.startswith(b"OpusHead") and len(body) >= 12:
                self._pre_skip = struct.unpack_from("<H", body, 10)[0]
            elif granule >= 0:
                self._samples = max(self._samples, granule)
            buf = buf[page_end:]
        self._buffer = buf

    def _read_mp3_frames(self) -> None:
        buf = self._buffer
        i = 0
        while len(buf) - i >= 4:
            frame = _mp3_frame(buf, i)
            if frame is None:
                i += 1
                continue
            length, samples, rate_hz = frame
            if len(buf) - i < length:
                break
            body = buf[i : i + length]
            self._frames_seen += 1
            if not (self._frames_seen == 1 and (b"Xing" in body or b"Info" in body)):
                self._samples += samples
                self._rate_hz = rate_hz
            i += length
        self._buffer = buf[i:]


def _mp3_frame(buf: bytes, i: int) -> tuple[int, int, int] | None:
    """(frame bytes, samples, sample rate) of the Layer III frame header at ``i``, or None."""
    if buf[i] != 0xFF or buf[i + 1] & 0xE0 != 0xE0:
        return None
    version = (buf[i + 1] >> 3) & 0x3  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    layer = (buf[i + 1] >> 1) & 0x3  # 1: Layer III
    bitrate_index = buf[i + 2] >> 4
    rate_index = (buf[i + 2] >> 2) & 0x3
    padding = (buf[i + 2] >> 1) & 0x1
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    kbps = _MP3_KBPS[1 if version == 3 else 2][bitrate_index]
    rate_hz = _MP3_RATES_HZ[version][rate_index]
    per_frame = 1152 if version == 3 else 576
    length = per_frame // 8 * kbps * 1000 // rate_hz + padding
    return length, per_frame, rate_hz


def _opus_packet_ms(packet: bytes) -> float:
    """The duration of one raw Opus packet, from its TOC byte (RFC 6716, 3.1)."""
    if not packet:
        return 0.0
    toc = packet[0]
    config = toc >> 3
    if config < 12:
        frame_ms = _OPUS_FRAME_MS[config % 4]
    elif config < 16:
        frame_ms = _OPUS_FRAME_MS[config % 2]
    else:
        frame_ms = _CELT_FRAME_MS[config % 4]
    code = toc & 0x3
    frames = (
        1 if code == 0 else 2 if code in (1, 2) else (packet[1] & 0x3F if len(packet) > 1 else 0)
    )
    return frame_ms * frames
