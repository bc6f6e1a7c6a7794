"""One context stream's audio path after the engine: resample, then encode, in order."""

from __future__ import annotations

from speakstream.audio.encoders import FORMATS, Encoder, create_encoder
from speakstream.audio.pcm import PcmChunk
from speakstream.audio.resample import StreamResampler


class StreamPipeline:
    def __init__(self, encoding: str, sample_rate_hz: int, engine_rate_hz: int) -> None:
        self.encoding = encoding
        self.sample_rate_hz = sample_rate_hz
        self.resampler = StreamResampler(engine_rate_hz, sample_rate_hz)
        self.encoder: Encoder = create_encoder(encoding, sample_rate_hz)
        # Work worth moving off the event loop: a codec, or a resampler on long chunks.
        self.heavy = FORMATS[encoding].heavy or self.resampler.active

    def process(self, chunk: PcmChunk) -> list[bytes]:
        return self.encoder.encode(self.resampler.process(chunk))

    def finish(self) -> list[bytes]:
        tail = self.resampler.finish()
        payloads = self.encoder.encode(tail) if tail.num_samples else []
        return payloads + self.encoder.finish()
