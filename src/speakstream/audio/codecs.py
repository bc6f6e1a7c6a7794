"""Compressed encodings through PyAV (FFmpeg's libopus, LAME, AAC and FLAC, shipped in its wheels).

Each encoder is fed PCM in order and returns what it has produced so far: whole Ogg pages
(Ogg Opus), whole MP3 frames, ADTS AAC frames, FLAC frames (after the stream header, whose
length is left unknown), or one Opus packet per payload (raw packets, for WebRTC and
telephony pipelines). Each stream starts with what a decoder needs (Ogg headers), so it is
decodable from its first byte.

A codec with a bit rate (Opus, MP3, AAC) is made at the ``bit_rate_bps`` it is created
with, or at its class's ``default_bit_rate_bps`` (``audio/bit_rates.py`` says which bit
rates each can make; ``create_encoder`` checks them before they get here).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any, ClassVar

import av
import numpy as np

from speakstream.audio.bit_rates import DEFAULT_BIT_RATES_KBPS
from speakstream.audio.pcm import PcmChunk, float_to_int16


class _Sink:
    """A write-only file for PyAV that hands back what was written since the last take."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _frame(chunk: PcmChunk, pts: int) -> Any:
    pcm = float_to_int16(chunk.samples).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = chunk.sample_rate_hz
    frame.pts = pts
    frame.time_base = Fraction(1, chunk.sample_rate_hz)
    return frame


class _ContainerEncoder:
    """A codec muxed into a container written to memory as it goes."""

    container_format: ClassVar[str]
    codec: ClassVar[str]
    container_options: ClassVar[Mapping[str, str]] = {}
    codec_options: ClassVar[Mapping[str, str]] = {}
    default_bit_rate_bps: ClassVar[int | None] = None

    def __init__(self, sample_rate_hz: int, bit_rate_bps: int | None = None) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.bit_rate_bps = bit_rate_bps or self.default_bit_rate_bps
        self._sink = _Sink()
        self._container: Any = av.open(
            self._sink, mode="w", format=self.container_format, options=dict(self.container_options)
        )
        stream: Any = self._container.add_stream(
            self.codec, rate=sample_rate_hz, layout="mono", options=dict(self.codec_options)
        )
        if self.bit_rate_bps:
            stream.bit_rate = self.bit_rate_bps
        self._stream = stream
        self._pts = 0

    def encode(self, chunk: PcmChunk) -> list[bytes]:
        if chunk.num_samples == 0:
            return []
        for packet in self._stream.encode(_frame(chunk, self._pts)):
            self._container.mux(packet)
        self._pts += chunk.num_samples
        data = self._sink.take()
        return [data] if data else []

    def finish(self) -> list[bytes]:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        data = self._sink.take()
        return [data] if data else []


class OggOpusEncoder(_ContainerEncoder):
    encoding = "opus"
    container_format = "ogg"
    codec = "libopus"
    container_options: ClassVar[Mapping[str, str]] = {"page_duration": "20000"}  # 20 ms pages
    codec_options: ClassVar[Mapping[str, str]] = {"application": "voip", "frame_duration": "20"}
    default_bit_rate_bps = DEFAULT_BIT_RATES_KBPS["opus"] * 1000


class Mp3Encoder(_ContainerEncoder):
    encoding = "mp3"
    container_format = "mp3"
    codec = "libmp3lame"
    container_options: ClassVar[Mapping[str, str]] = {"id3v2_version": "0"}
    default_bit_rate_bps = DEFAULT_BIT_RATES_KBPS["mp3"] * 1000


class AdtsAacEncoder(_ContainerEncoder):
    """AAC-LC in ADTS frames (what OpenAI's ``aac`` format is): decodable from any frame."""

    encoding = "aac"
    container_format = "adts"
    codec = "aac"
    default_bit_rate_bps = DEFAULT_BIT_RATES_KBPS["aac"] * 1000


class FlacEncoder(_ContainerEncoder):
    """FLAC as it is streamed: the header (total length unknown), then frames."""

    encoding = "flac"
    container_format = "flac"
    codec = "flac"


class OpusPacketEncoder:
    """Raw Opus packets of 20 ms, one per payload (no container)."""

    encoding = "opus_packets"
    default_bit_rate_bps = DEFAULT_BIT_RATES_KBPS["opus_packets"] * 1000

    def __init__(self, sample_rate_hz: int, bit_rate_bps: int | None = None) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.bit_rate_bps = bit_rate_bps or self.default_bit_rate_bps
        context: Any = av.CodecContext.create("libopus", "w")
        context.sample_rate = sample_rate_hz
        context.layout = "mono"
        context.format = "s16"
        context.bit_rate = self.bit_rate_bps
        context.options = {"application": "voip", "frame_duration": "20"}
        context.open()
        self._context = context
        self._fifo: Any = av.AudioFifo()
        self._frame_samples = int(context.frame_size)
        self._pts = 0

    def _drain(self, final: bool) -> list[bytes]:
        packets: list[bytes] = []
        while True:
            frame = self._fifo.read(self._frame_samples, partial=final)
            if frame is None:
                break
            for packet in self._context.encode(frame):
                packets.append(bytes(packet))
            if final and self._fifo.samples == 0:
                break
        return packets

    def encode(self, chunk: PcmChunk) -> list[bytes]:
        if chunk.num_samples == 0:
            return []
        self._fifo.write(_frame(chunk, self._pts))
        self._pts += chunk.num_samples
        return self._drain(final=False)

    def finish(self) -> list[bytes]:
        if self._fifo.samples:
            pad = self._frame_samples - self._fifo.samples % self._frame_samples
            if pad != self._frame_samples:
                silence = PcmChunk(np.zeros(pad, dtype=np.float32), self.sample_rate_hz)
                self._fifo.write(_frame(silence, self._pts))
                self._pts += pad
        packets = self._drain(final=False)
        packets.extend(bytes(p) for p in self._context.encode(None))
        return packets
