"""The Chatterbox engine: text in, 24 kHz speech out, streamed inside a sentence.

``ChatterboxEngine(settings)`` checks at once that ``chatterbox-tts`` is installed, that
the checkpoint directory holds every file (``EngineLoadError`` naming what is missing and
where to put it) and that it has a voice; then it loads the model (``preload``, the
default: a server's first segment must not wait for it), or leaves that to the first use
(``load``), one instance per engine, under one lock that every model call takes for one
step (a T3 token, an S3Gen decode), so concurrent calls share the model turn by turn.
``synthesize`` returns a ``ChatterboxStream``: PCM chunks as the vocoder makes them (the
first after ~10 speech tokens, see ``vocoder``), each but the last marked ``continues``
(so the seams join them as they are); ``cancel()`` (any thread) or ``close()``
stops token generation before its next step. Options (``EngineSettings.options``, the
``chatterbox.*`` settings): ``ChatterboxOptions``; per call, ``SynthesisOptions`` may
override ``exaggeration``, ``cfg_weight``, ``temperature`` and ``seed`` (turbo: only
``temperature`` and ``seed``, the others it has not; ``capabilities.options`` says
which). ``variant`` turbo loads ``ChatterboxTurboTTS``'s files and samples with its
settings (top-k 1000, top-p 0.95), streamed the same way; its tokens end with upstream's
three silence tokens before the last decode. Generated
tokens are bounded by ``max_new_tokens`` and by ``tokens_per_char`` x the text's length
(runaway generation is Chatterbox's known failure); a text longer than
``max_text_chars`` is refused (``ValueError``) rather than cut short. No word timings.
Output is not watermarked (upstream's Perth watermarker works on whole utterances).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speakstream.audio.pcm import PcmChunk
from speakstream.engines.base import (
    EngineCapabilities,
    EngineLoadError,
    EngineSettings,
    SynthesisOptions,
    VoiceInfo,
)
from speakstream.engines.chatterbox.checkpoint import (
    BUILTIN_VOICE_FILE,
    ChatterboxModel,
    check_checkpoint_dir,
    load_model,
)
from speakstream.engines.chatterbox.options import ChatterboxOptions
from speakstream.engines.chatterbox.tokens import (
    TURBO_DEFAULTS,
    SamplingParams,
    speech_tokens,
    turbo_speech_tokens,
)
from speakstream.engines.chatterbox.vocoder import SAMPLE_RATE_HZ, ChunkSchedule, StreamingVocoder
from speakstream.engines.chatterbox.voices import (
    DEFAULT_VOICE,
    REFERENCE_VOICE,
    VoiceBook,
    t3_cond,
)

NOT_STREAMED = 10**9  # a first chunk that never comes: one decode at the end
TURBO_TAIL_TOKENS = 3  # upstream turbo ends every utterance with 3 of S3Gen's silence tokens
OPTIONS = {
    "standard": ("exaggeration", "cfg_weight", "temperature", "seed"),
    "turbo": ("temperature", "seed"),
}


class ChatterboxStream:
    """The chunks of one ``synthesize`` call; ``cancel`` stops it before the next step."""

    def __init__(self) -> None:
        self.steps = 0  # speech tokens generated so far
        self._cancelled = threading.Event()
        self._chunks: Iterator[PcmChunk] = iter(())

    def __iter__(self) -> ChatterboxStream:
        return self

    def __next__(self) -> PcmChunk:
        return next(self._chunks)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    def close(self) -> None:
        self._cancelled.set()
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        except ValueError:  # running in another thread: it stops at its next step
            pass


class ChatterboxEngine:
    def __init__(self, settings: EngineSettings) -> None:
        if importlib.util.find_spec("chatterbox") is None:
            raise EngineLoadError(
                "the chatterbox engine needs the chatterbox extra: "
                "bash scripts/setup-venv.sh '[chatterbox]' (see docs/chatterbox.md)"
            )
        self.options = ChatterboxOptions.from_mapping(settings.options)
        self.checkpoint_dir = check_checkpoint_dir(
            self.options.checkpoint_dir, self.options.variant
        )
        voices = []
        if (self.checkpoint_dir / BUILTIN_VOICE_FILE).is_file():
            voices.append(DEFAULT_VOICE)
        if self.options.reference_wav:
            voices.append(REFERENCE_VOICE)
        if not voices:
            raise EngineLoadError(
                f"the chatterbox checkpoint {self.checkpoint_dir} has no {BUILTIN_VOICE_FILE} "
                "and chatterbox.reference_wav is not set: the engine has no voice"
            )
        default = settings.default_voice or voices[0]
        if default not in voices:
            raise EngineLoadError(f"voice {default!r} is not one of {', '.join(voices)}")
        self._caps = EngineCapabilities(
            engine="chatterbox",
            voices=tuple(VoiceInfo(name, SAMPLE_RATE_HZ, "en") for name in voices),
            default_voice=default,
            streams_within_sentence=self.options.stream,
            word_timings=False,
            options=OPTIONS[self.options.variant],
            variant=self.options.variant,
        )
        self.schedule = ChunkSchedule(
            first_chunk_tokens=self.options.first_chunk_tokens
            if self.options.stream
            else NOT_STREAMED,
            cfm_steps=self.options.flow_steps,
        )
        self._lock = threading.Lock()  # the model: one step at a time
        self._load_lock = threading.Lock()
        self._model: ChatterboxModel | None = None
        self._voices: VoiceBook | None = None
        if settings.threads:
            torch.set_num_threads(settings.threads)
        if self.options.preload:
            self.load()

    @property
    def capabilities(self) -> EngineCapabilities:
        return self._caps

    def load(self) -> tuple[ChatterboxModel, VoiceBook]:
        """The model and its voices, loaded on first call."""
        with self._load_lock:
            if self._model is None or self._voices is None:
                model = load_model(self.checkpoint_dir, self.options.device, self.options.variant)
                reference = Path(self.options.reference_wav) if self.options.reference_wav else None
                uploads = Path(self.options.upload_dir) if self.options.upload_dir else None
                self._voices = VoiceBook(model, reference, uploads)
                self._model = model
            return self._model, self._voices

    def conditioning(self, voice: str, options: SynthesisOptions) -> tuple[Any, Any]:
        """The voice's ``Conditionals`` and the T3 conditioning a call with ``options``
        uses (its ``exaggeration``, else the setting's)."""
        model, voices = self.load()
        exaggeration = options.exaggeration
        if exaggeration is None:
            exaggeration = self.options.exaggeration
        with self._lock:
            conds = voices.conditionals(voice)
            return conds, t3_cond(conds, exaggeration, model.device)

    def synthesize(self, text: str, voice: str, options: SynthesisOptions) -> ChatterboxStream:
        stream = ChatterboxStream()
        stream._chunks = self._chunks(stream, text, voice, options)
        return stream

    def _chunks(
        self, stream: ChatterboxStream, text: str, voice: str, options: SynthesisOptions
    ) -> Iterator[PcmChunk]:
        if not any(ch.isalnum() for ch in text):
            return
        if len(text) > self.options.max_text_chars:
            raise ValueError(
                f"{len(text)} characters is more than chatterbox.max_text_chars "
                f"({self.options.max_text_chars}) for one generation"
            )
        from chatterbox.tts import punc_norm

        model, _ = self.load()
        opts = self.options
        seed = options.seed if options.seed is not None else opts.seed or secrets.randbits(31)
        conds, cond = self.conditioning(voice, options)
        with self._lock:
            normalized = punc_norm(" ".join(text.split()))
            text_tokens = model.tokenizer.text_to_tokens(normalized)
        turbo = model.variant == "turbo"
        params = dataclasses.replace(
            TURBO_DEFAULTS if turbo else SamplingParams(),
            temperature=opts.temperature if options.temperature is None else options.temperature,
            max_new_tokens=min(
                opts.max_new_tokens, math.ceil(opts.tokens_per_char * len(normalized))
            ),
        )
        if not turbo:
            cfg_weight = opts.cfg_weight if options.cfg_weight is None else options.cfg_weight
            params = dataclasses.replace(params, cfg_weight=cfg_weight)
        vocoder = StreamingVocoder(
            model.s3gen,
            conds.gen,
            seed=seed,
            lock=self._lock,
            schedule=self.schedule,
            speed=options.speed,
        )
        for token in (turbo_speech_tokens if turbo else speech_tokens)(
            model.t3,
            cond,
            text_tokens,
            params,
            generator=torch.Generator().manual_seed(seed),
            lock=self._lock,
            should_stop=lambda: stream.cancelled,
        ):
            stream.steps += 1
            audio = vocoder.push(token)
            if audio is not None and audio.size:
                yield _chunk(audio, continues=True)  # finish() always brings more
        if stream.cancelled:
            return
        if turbo and vocoder.tokens:
            from chatterbox.models.s3gen.const import S3GEN_SIL

            for _ in range(TURBO_TAIL_TOKENS):
                audio = vocoder.push(S3GEN_SIL)
                if audio is not None and audio.size:
                    yield _chunk(audio, continues=True)
        rest = vocoder.finish()
        if rest.size:
            yield _chunk(rest)

    def close(self) -> None:
        with self._load_lock:
            self._model = None
            self._voices = None


def _chunk(audio: np.ndarray, continues: bool = False) -> PcmChunk:
    """A piece of the sentence; ``continues``: more of it follows (no seam treatment)."""
    return PcmChunk(
        np.clip(audio, -1.0, 1.0).astype(np.float32), SAMPLE_RATE_HZ, continues=continues
    )
