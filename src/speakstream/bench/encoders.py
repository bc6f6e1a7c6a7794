"""Encoder benchmark: ``speakstream bench encoders`` (or its old name, ``bench --audio``).

For every output format, on real Piper speech, in one run:

* CPU cost: CPU time to resample and encode one second of audio (``time.process_time``),
  p50/p95/p99 over repetitions, and its ratio to ``pcm_s16le`` at the voice's rate (the
  baseline: a plain sample conversion) measured in the same run;
* latency added to the first audio byte: the time from a first segment's PCM (about half a
  second of speech, as the server gets it) to the format's first payload, and the audio
  the codec holds back at that moment (its frame size and lookahead): what a player can
  decode from the payloads so far, against what was fed.

Results go to ``bench/results/encoders.json``.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from speakstream.audio.encoders import FORMATS, resolve_rate_hz
from speakstream.audio.pipeline import StreamPipeline
from speakstream.bench.common import percentiles, write_results

CASES: list[tuple[str, int | None]] = [
    ("pcm_s16le", None),
    ("pcm_s16le", 16000),
    ("pcm_s16le", 48000),
    ("pcm_f32le", None),
    ("mulaw", 8000),
    ("alaw", 8000),
    ("wav", None),
    ("opus", 48000),
    ("opus", 24000),
    ("opus_packets", 48000),
    ("mp3", None),
]
TEXTS = [
    "Hello there, thanks for calling.",
    "Your order shipped this morning and should arrive on Tuesday.",
    "Is there anything else I can help you with today?",
]


def _decodable_ms(encoding: str, rate_hz: int, payloads: list[bytes]) -> float:
    """How much audio a player can decode from these payloads."""
    import av

    data = b"".join(payloads)
    if not data:
        return 0.0
    width = FORMATS[encoding].bytes_per_sample
    if width is not None:
        header = 44 if encoding == "wav" else 0
        return 1000.0 * (len(data) - header) / width / rate_hz
    if encoding == "opus_packets":
        return 20.0 * len(payloads)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = container.streams.audio[0]
            return 1000.0 * sum(f.samples for f in container.decode(stream)) / stream.rate
    except (av.error.FFmpegError, IndexError):
        return 0.0


def run(*, quick: bool = False, output: Path | None = None) -> int:
    from speakstream.engines import EngineSettings, SynthesisOptions, load_engine

    engine = load_engine("piper", EngineSettings())
    voice = engine.capabilities.default_voice
    voice_hz = engine.capabilities.voices[0].sample_rate_hz
    speech = [c for t in TEXTS for c in engine.synthesize(t, voice, SynthesisOptions())]
    first = next(iter(engine.synthesize("Hello there,", voice, SynthesisOptions())))
    engine.close()
    speech_s = sum(c.num_samples for c in speech) / voice_hz
    repeats = 5 if quick else 30

    results: dict[str, Any] = {}
    for encoding, rate in CASES:
        rate_hz = resolve_rate_hz(encoding, rate, voice_hz)
        name = f"{encoding}@{rate_hz}"
        cpu_ms_per_s: list[float] = []
        for _ in range(repeats):
            pipeline = StreamPipeline(encoding, rate_hz, voice_hz)
            start = time.process_time()
            for chunk in speech:
                pipeline.process(chunk)
            pipeline.finish()
            cpu_ms_per_s.append(1000.0 * (time.process_time() - start) / speech_s)
        first_payload_ms: list[float] = []
        held_back_ms: list[float] = []
        for _ in range(repeats):
            pipeline = StreamPipeline(encoding, rate_hz, voice_hz)
            start = time.perf_counter()
            payloads = pipeline.process(first)
            first_payload_ms.append(1000.0 * (time.perf_counter() - start))
            held_back_ms.append(first.duration_ms - _decodable_ms(encoding, rate_hz, payloads))
        results[name] = {
            "encoding": encoding,
            "sample_rate_hz": rate_hz,
            "heavy": FORMATS[encoding].heavy,
            "cpu_ms_per_audio_s": percentiles(cpu_ms_per_s),
            "first_payload_ms": percentiles(first_payload_ms),
            "held_back_ms": percentiles(held_back_ms),
        }
    baseline = results[f"pcm_s16le@{voice_hz}"]["cpu_ms_per_audio_s"]["p50"]
    for entry in results.values():
        entry["cpu_vs_pcm_s16le_p50"] = round(entry["cpu_ms_per_audio_s"]["p50"] / baseline, 1)

    print(
        f"{speech_s:.1f} s of Piper speech, {repeats} repetitions; first segment {first.duration_ms:.0f} ms"
    )
    print(
        f"{'format':<20} {'CPU ms per audio s p50/p95/p99':<32} {'x pcm':>7} {'first payload ms p50/p99':<26} {'held back ms':>12}"
    )
    for name, entry in results.items():
        cpu, fp = entry["cpu_ms_per_audio_s"], entry["first_payload_ms"]
        print(
            f"{name:<20} {cpu['p50']:>8} {cpu['p95']:>8} {cpu['p99']:>8}       "
            f"{entry['cpu_vs_pcm_s16le_p50']:>7} {fp['p50']:>10} {fp['p99']:>10}       "
            f"{entry['held_back_ms']['p50']:>10}"
        )
    report = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "speech_s": round(speech_s, 3),
        "first_segment_ms": round(first.duration_ms, 1),
        "repeats": repeats,
        "formats": results,
    }
    write_results(report, output, "bench/results/encoders.json")
    return 0
