"""Chatterbox latency: ``speakstream bench chatterbox [--quick]``.

In this process, no server: for each text, the engine's time to its first vocoded chunk
and to the end of the utterance, streamed inside the sentence (``chatterbox.stream``)
against one decode at the end, on the same seed (so the same speech tokens). What
matters is the ratio: first chunk / whole utterance (streamed), and the streamed first
chunk against the one-shot's first (and only) one. The checkpoint is
``SPEAKSTREAM_CHATTERBOX_CHECKPOINT_DIR`` if set (real weights; device from
``SPEAKSTREAM_CHATTERBOX_DEVICE``, default auto), else a random-weight checkpoint of the
real architecture (T3 cut to 2 layers, built offline into a temporary directory, ~45 s):
its absolute times mean little (2 T3 layers instead of 30; a CPU), and since its T3
never says stop, every length is set by the token bound (1 token per character here).
Results: ``bench/results/chatterbox.json``.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from speakstream.bench.common import write_results

TEXTS = (
    "Hello there, how are you today?",
    "Streaming speech means the listener hears the start of a sentence while its end "
    "is still being generated.",
)
SEED = 42


def _measure(engine: Any, text: str) -> dict[str, float]:
    from speakstream.engines import SynthesisOptions

    start = time.perf_counter()
    first_s = None
    chunks = 0
    samples = 0
    for chunk in engine.synthesize(
        text, engine.capabilities.default_voice, SynthesisOptions(seed=SEED)
    ):
        if first_s is None:
            first_s = time.perf_counter() - start
        chunks += 1
        samples += chunk.num_samples
    total_s = time.perf_counter() - start
    return {
        "first_chunk_ms": round(1000 * (first_s or total_s), 1),
        "total_ms": round(1000 * total_s, 1),
        "audio_ms": round(1000 * samples / 24_000, 1),
        "chunks": chunks,
    }


def run(*, quick: bool = False, output: Path | None = None) -> int:
    from speakstream.engines import EngineSettings, load_engine
    from speakstream.engines.chatterbox.engine import NOT_STREAMED
    from speakstream.engines.chatterbox.vocoder import ChunkSchedule

    real_dir = os.environ.get("SPEAKSTREAM_CHATTERBOX_CHECKPOINT_DIR", "")
    options: dict[str, Any] = {"device": os.environ.get("SPEAKSTREAM_CHATTERBOX_DEVICE", "auto")}
    with tempfile.TemporaryDirectory(prefix="chatterbox-bench-") as scratch:
        if real_dir:
            checkpoint = real_dir
        else:
            from speakstream.engines.chatterbox.random_checkpoint import build

            print("building a random-weight checkpoint (T3 cut to 2 layers)...")
            checkpoint = str(build(Path(scratch), t3_layers=2, seed=0))
            options["tokens_per_char"] = 1.0
        options["checkpoint_dir"] = checkpoint
        engine: Any = load_engine("chatterbox", EngineSettings(options=options))
        model, _ = engine.load()
        streaming = engine.schedule
        one_shot = dataclasses.replace(streaming, first_chunk_tokens=NOT_STREAMED)

        def measure(schedule: ChunkSchedule, text: str) -> dict[str, float]:
            engine.schedule = schedule  # one model, two schedules
            return _measure(engine, text)

        repeats = 1 if quick else 3
        texts = TEXTS[:1] if quick else TEXTS
        measure(streaming, "Warm up.")
        rows: list[dict[str, Any]] = []
        for text in texts:
            runs = [(measure(streaming, text), measure(one_shot, text)) for _ in range(repeats)]
            s = {k: statistics.median(r[0][k] for r in runs) for k in runs[0][0]}
            o = {k: statistics.median(r[1][k] for r in runs) for k in runs[0][1]}
            rows.append(
                {
                    "text_chars": len(text),
                    "streamed": s,
                    "one_shot": o,
                    "first_chunk_over_total": round(s["first_chunk_ms"] / s["total_ms"], 3),
                    "first_chunk_over_one_shot_first": round(
                        s["first_chunk_ms"] / o["first_chunk_ms"], 3
                    ),
                    "streamed_total_over_one_shot_total": round(s["total_ms"] / o["total_ms"], 3),
                }
            )
        engine.close()
    import torch

    results = {
        "checkpoint": "real" if real_dir else "random weights, T3 2 layers",
        "device": model.device,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "repeats": repeats,
        "rows": rows,
    }
    for row in rows:
        s, o = row["streamed"], row["one_shot"]
        print(
            f"{row['text_chars']} chars: streamed first chunk {s['first_chunk_ms']} ms of "
            f"{s['total_ms']} ms ({row['first_chunk_over_total']:.0%}), {s['chunks']} chunks, "
            f"{s['audio_ms']} ms audio; one-shot {o['total_ms']} ms"
        )
    write_results(results, output, "bench/results/chatterbox.json")
    return 0
