"""One context stream's audio path after the engine: resample, then encode, in order.

``flush()`` hands out what the resampler still holds (its filter delay), so that the
audio of text flushed so far is all sent before the ``flushed`` event; the resampler
then starts afresh (the seam falls where the engine's audio had faded out anyway).
A compressed encoding is made at ``bit_rate_bps`` (None: the codec's default).
"""

from __future__ import annotations

from speakstream.audio.encoders import FORMATS, Encoder, create_encoder
from speakstream.audio.pcm import PcmChunk
from speakstream.audio.resample import StreamResampler


class StreamPipeline:
    def __init__(
        self,
        encoding: str,
        sample_rate_hz: int,
        engine_rate_hz: int,
        bit_rate_bps: int | None = None,
    ) -> None:
        self.encoding = encoding
        self.sample_rate_hz = sample_rate_hz
        self.engine_rate_hz = engine_rate_hz
        self.resampler = StreamResampler(engine_rate_hz, sample_rate_hz)
        self.encoder: Encoder = create_encoder(encoding, sample_rate_hz, bit_rate_bps)
        # Work worth moving off the event loop: a codec, or a resampler on long chunks.
        self.heavy = FORMATS[encoding].heavy or self.resampler.active

    def process(self, chunk: PcmChunk) -> list[bytes]:
        return self.encoder.encode(self.resampler.process(chunk))

    def flush(self) -> list[bytes]:
        """The audio the resampler holds back, encoded; the stream goes on after it."""
        if not self.resampler.active:
            return []
        tail = self.resampler.finish()
        self.resampler = StreamResampler(self.engine_rate_hz, self.sample_rate_hz)
        return self.encoder.encode(tail) if tail.num_samples else []

    def finish(self) -> list[bytes]:
        tail = self.resampler.finish()
        payloads = self.encoder.encode(tail) if tail.num_samples else []
        return payloads + self.encoder.finish()
