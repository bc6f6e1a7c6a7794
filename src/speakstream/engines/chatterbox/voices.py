"""Voices of the Chatterbox engine: conditionals from ``conds.pt`` or a reference WAV.

A voice is chatterbox's ``Conditionals`` (T3's speaker embedding and prompt tokens,
S3Gen's reference mel, tokens and x-vector). ``VoiceBook`` names them: ``default`` is
the checkpoint's ``conds.pt``, ``reference`` the configured reference recording, and
``upload:<id>`` a recording stored by the upload endpoint (``uploads``), built on first
use and kept in a small LRU cache. ``t3_cond`` gives a voice's T3 conditioning with a
context's ``exaggeration``. Callers hold the engine's model lock.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from speakstream.engines.base import EngineLoadError
from speakstream.engines.chatterbox.checkpoint import ChatterboxModel
from speakstream.engines.chatterbox.uploads import upload_id_of, upload_path

DEFAULT_VOICE = "default"
REFERENCE_VOICE = "reference"
DECODER_COND_S = 10  # S3Gen's reference from the first 10 s (DEC_COND_LEN)
UPLOAD_CACHE_SIZE = 16


class UnknownVoiceError(EngineLoadError):
    """A voice name this engine cannot speak with (the upload is gone, or never was)."""


def conditionals_from_wav(model: ChatterboxModel, wav_path: Path) -> Any:
    """chatterbox's ``prepare_conditionals``, on the loaded modules, for one recording."""
    with torch.inference_mode():
        return _conditionals_from_wav(model, wav_path)


def _conditionals_from_wav(model: ChatterboxModel, wav_path: Path) -> Any:
    import librosa
    from chatterbox.models.s3gen import S3GEN_SR
    from chatterbox.models.s3tokenizer import S3_SR
    from chatterbox.models.t3.modules.cond_enc import T3Cond
    from chatterbox.tts import Conditionals

    wav_24k, _ = librosa.load(str(wav_path), sr=S3GEN_SR)
    wav_16k = librosa.resample(wav_24k, orig_sr=S3GEN_SR, target_sr=S3_SR)
    gen = model.s3gen.embed_ref(wav_24k[: DECODER_COND_S * S3GEN_SR], S3GEN_SR, device=model.device)
    prompt_len = model.t3.hp.speech_cond_prompt_len
    prompt_tokens, _ = model.s3gen.tokenizer.forward(
        [wav_16k[: model.encoder_cond_s * S3_SR]], max_len=prompt_len
    )
    prompt_tokens = prompt_tokens.reshape(1, -1).to(model.device)
    embeds = model.ve.embeds_from_wavs([wav_16k], sample_rate=S3_SR)
    speaker = torch.from_numpy(embeds).mean(dim=0, keepdim=True).to(model.device)
    t3 = T3Cond(
        speaker_emb=speaker,
        cond_prompt_speech_tokens=prompt_tokens,
        emotion_adv=0.5 * torch.ones(1, 1, 1),
    ).to(device=model.device)
    return Conditionals(t3, gen)


def t3_cond(conds: Any, exaggeration: float, device: str) -> Any:
    """A fresh T3 conditioning of ``conds`` with this ``exaggeration`` (emotion_adv)."""
    from chatterbox.models.t3.modules.cond_enc import T3Cond

    base = conds.t3
    return T3Cond(
        speaker_emb=base.speaker_emb,
        cond_prompt_speech_tokens=base.cond_prompt_speech_tokens,
        emotion_adv=exaggeration * torch.ones(1, 1, 1, device=device),
    )


class VoiceBook:
    def __init__(
        self, model: ChatterboxModel, reference_wav: Path | None, upload_dir: Path | None
    ) -> None:
        self.model = model
        self.upload_dir = upload_dir
        self._fixed: dict[str, Any] = {}
        if model.builtin_conds is not None:
            self._fixed[DEFAULT_VOICE] = model.builtin_conds
        if reference_wav is not None:
            if not reference_wav.is_file():
                raise EngineLoadError(f"chatterbox.reference_wav {reference_wav} does not exist")
            self._fixed[REFERENCE_VOICE] = conditionals_from_wav(model, reference_wav)
        self._uploads: OrderedDict[str, Any] = OrderedDict()

    def conditionals(self, voice: str) -> Any:
        fixed = self._fixed.get(voice)
        if fixed is not None:
            return fixed
        upload_id = upload_id_of(voice)
        if upload_id is None or self.upload_dir is None:
            raise UnknownVoiceError(f"unknown chatterbox voice {voice!r}")
        cached = self._uploads.get(upload_id)
        if cached is None:
            path = upload_path(self.upload_dir, upload_id)
            if not path.is_file():
                raise UnknownVoiceError(f"no uploaded voice {voice!r} on this server")
            cached = conditionals_from_wav(self.model, path)
            self._uploads[upload_id] = cached
            while len(self._uploads) > UPLOAD_CACHE_SIZE:
                self._uploads.popitem(last=False)
        self._uploads.move_to_end(upload_id)
        return cached
