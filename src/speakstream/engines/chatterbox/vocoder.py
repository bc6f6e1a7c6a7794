"""Speech tokens to 24 kHz audio in pieces: Chatterbox's S3Gen, streamed inside a sentence.

Upstream decodes a sentence's tokens once, at the end (its ``finalize=False`` path
crashes). ``StreamingVocoder`` takes tokens one at a time (``push``) and, on a growing
schedule, re-decodes the whole prefix so far: S3Gen's flow (token encoder + CFM) with
**fixed noise** (one seeded noise tensor, prefix-stable, so a re-decode changes a frame
only through what the new tokens change), then the HiFT vocoder with its **source cache**
(the previous decode's excitation, so the harmonic phase carries on). Of each decode it
keeps back the mel of the last ``lookahead_tokens`` tokens (the encoder's look-ahead:
their frames still change) and ``holdback_ms`` of audio (the vocoder's right context),
and joins each new piece to the last with a ``crossfade_ms`` raised-cosine crossfade (weights summing to one: the two decodes
are nearly the same signal)
against the previous decode's unsent tail. ``finish`` decodes everything and returns
the rest, so the streamed audio has exactly the length of a one-shot decode of the same
tokens (``decode_once``). Decode points grow geometrically (``first_chunk_tokens``, then
x ``growth``), so the repeated prefixes cost a constant factor, not a square.
``speed`` stretches the mel in time before vocoding (pitch kept by HiFT's F0 predictor).
The turbo variant's S3Gen (``meanflow``) is solved as upstream's ``basic_euler``: no
guidance, linear time steps, the interval's end ``r`` given to the estimator.
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

SAMPLE_RATE_HZ = 24_000
SAMPLES_PER_MEL_FRAME = 480  # 50 mel frames a second
MEL_FRAMES_PER_TOKEN = 2  # 25 speech tokens a second
SPEECH_VOCAB_SIZE = 6561  # ids at or above are T3's special tokens, never vocoded


@dataclass(frozen=True, slots=True)
class ChunkSchedule:
    first_chunk_tokens: int = 10  # audio leaves after this many tokens (+ look-ahead)
    growth: float = 1.5  # each further decode at this factor more tokens
    lookahead_tokens: int = 3  # S3Gen's encoder looks 3 tokens ahead
    holdback_ms: float = 40.0  # audio kept back for the vocoder's right context
    crossfade_ms: float = 12.0
    cfm_steps: int = 10  # upstream's default for the standard model


class StreamingVocoder:
    def __init__(
        self,
        s3gen: Any,
        ref: dict[str, Any],
        *,
        seed: int,
        lock: threading.Lock,
        schedule: ChunkSchedule | None = None,
        speed: float = 1.0,
    ) -> None:
        self.s3gen = s3gen
        self.schedule = schedule or ChunkSchedule()
        self.speed = speed
        self.seed = seed
        self.lock = lock
        self.device = s3gen.device
        self.dtype = s3gen.dtype
        self.ref = {
            "prompt_token": ref["prompt_token"].to(self.device, torch.long),
            "prompt_token_len": torch.as_tensor(ref["prompt_token_len"]).to(self.device),
            "prompt_feat": ref["prompt_feat"].to(self.device, self.dtype),
            "embedding": ref["embedding"].to(self.device, self.dtype),
        }
        self.tokens: list[int] = []
        self.decodes = 0  # how many times the prefix was decoded (for benchmarks)
        self._noise_gen = torch.Generator().manual_seed(seed)
        self._noise = torch.empty(1, 80, 0)
        self._source = torch.zeros(1, 1, 0, device=self.device, dtype=self.dtype)
        self._next_decode_at = self.schedule.first_chunk_tokens + self.schedule.lookahead_tokens
        self._sent = 0  # samples handed out
        self._tail = np.zeros(0, dtype=np.float32)  # the last decode's unsent crossfade tail
        fade = int(self.schedule.crossfade_ms * SAMPLE_RATE_HZ / 1000)
        ramp = np.pi * (np.arange(fade) + 0.5) / fade
        self._fade_in = (0.5 - 0.5 * np.cos(ramp)).astype(np.float32)
        self._fade_out = 1.0 - self._fade_in  # the two decodes agree: weights sum to 1

    @property
    def sent_samples(self) -> int:
        return self._sent

    def push(self, token: int) -> np.ndarray | None:
        """Add one speech token; new audio when a decode point is reached, else None."""
        if token >= SPEECH_VOCAB_SIZE:
            return None
        self.tokens.append(token)
        if len(self.tokens) < self._next_decode_at:
            return None
        self._next_decode_at = max(
            len(self.tokens) + 1, math.ceil(len(self.tokens) * self.schedule.growth)
        )
        stable_tokens = len(self.tokens) - self.schedule.lookahead_tokens
        audio = self._decode(stable_tokens * MEL_FRAMES_PER_TOKEN)
        holdback = int(self.schedule.holdback_ms * SAMPLE_RATE_HZ / 1000)
        return self._emit(audio, end=audio.size - max(holdback, self._fade_in.size))

    def finish(self) -> np.ndarray:
        """The rest of the audio, every token decoded (empty if there were none)."""
        if not self.tokens:
            return np.zeros(0, dtype=np.float32)
        audio = self._decode(len(self.tokens) * MEL_FRAMES_PER_TOKEN)
        return self._emit(audio, end=audio.size, final=True)

    def decode_once(self) -> np.ndarray:
        """The one-shot decode of every token pushed (no schedule, no crossfade)."""
        return self._decode(len(self.tokens) * MEL_FRAMES_PER_TOKEN)

    def _emit(self, audio: np.ndarray, end: int, final: bool = False) -> np.ndarray:
        start = self._sent
        if end <= start + self._tail.size and not final:
            return np.zeros(0, dtype=np.float32)  # nothing new enough yet
        piece = audio[start:end].copy()
        n = min(self._tail.size, piece.size)
        if n:
            piece[:n] = self._tail[:n] * self._fade_out[:n] + piece[:n] * self._fade_in[:n]
        fade = self._fade_in.size
        self._tail = audio[end : end + fade].astype(np.float32) if not final else self._tail[:0]
        self._sent = start + piece.size
        return piece.astype(np.float32)

    def _noise_for(self, frames: int) -> torch.Tensor:
        if self._noise.shape[2] < frames:
            more = max(frames - self._noise.shape[2], 256)
            block = torch.randn(1, 80, more, generator=self._noise_gen)
            self._noise = torch.cat([self._noise, block], dim=2)
        return self._noise[:, :, :frames]

    def _mel(self, frames: int) -> torch.Tensor:
        """The mel of every token, decoded with the fixed noise; the first ``frames``
        (called under ``inference_mode``)."""
        from chatterbox.models.s3gen.utils.mask import make_pad_mask

        flow = self.s3gen.flow
        ref = self.ref
        embedding = F.normalize(ref["embedding"].reshape(1, -1), dim=1)
        embedding = flow.spk_embed_affine_layer(embedding)
        token = torch.tensor([self.tokens], dtype=torch.long, device=self.device)
        token = torch.cat([ref["prompt_token"], token], dim=1)
        token_len = ref["prompt_token_len"].reshape(1) + len(self.tokens)
        mask = (~make_pad_mask(token_len)).unsqueeze(-1).to(embedding)
        h, h_masks = flow.encoder(flow.input_embedding(token) * mask, token_len)
        prompt_frames = ref["prompt_feat"].shape[1]
        total_frames = h.shape[1]
        h = flow.encoder_proj(h)
        conds = torch.zeros(1, total_frames, flow.output_size, device=self.device, dtype=h.dtype)
        conds[:, :prompt_frames] = ref["prompt_feat"]
        mask = (~make_pad_mask(h_masks.sum(dim=-1).squeeze(dim=-1))).unsqueeze(1).to(h)
        z = self._noise_for(total_frames).to(self.device, h.dtype)
        steps = self.schedule.cfm_steps
        t_span = torch.linspace(0, 1, steps + 1, device=self.device, dtype=h.dtype)
        mu = h.transpose(1, 2).contiguous()
        if getattr(self.s3gen, "meanflow", False):
            feat = _meanflow_euler(flow.decoder.estimator, z, t_span, mu, mask, embedding, conds)
        else:
            if flow.decoder.t_scheduler == "cosine":
                t_span = 1 - torch.cos(t_span * 0.5 * torch.pi)
            feat = flow.decoder.solve_euler(
                z, t_span=t_span, mu=mu, mask=mask, spks=embedding, cond=conds.transpose(1, 2)
            )
        mel: torch.Tensor = feat[:, :, prompt_frames : prompt_frames + frames]
        return mel

    def _decode(self, frames: int) -> np.ndarray:
        with self.lock, torch.inference_mode():
            self.decodes += 1
            mel = self._mel(frames).to(self.dtype)
            if self.speed != 1.0:
                size = max(1, round(mel.shape[2] / self.speed))
                mel = F.interpolate(mel, size=size, mode="linear", align_corners=False)
            devices = [self.device] if str(self.device).startswith("cuda") else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)  # HiFT's excitation noise, the same every time
                wav, source = self.s3gen.mel2wav.inference(
                    speech_feat=mel, cache_source=self._source
                )
            self._source = source
            fade = self.s3gen.trim_fade
            wav[:, : fade.numel()] *= fade[: wav.shape[1]]  # upstream's reference spill-over fix
            audio: np.ndarray = wav.squeeze(0).float().cpu().numpy()
        return audio


def _meanflow_euler(
    estimator: Any,
    x: torch.Tensor,
    t_span: torch.Tensor,
    mu: torch.Tensor,
    mask: torch.Tensor,
    spks: torch.Tensor,
    conds: torch.Tensor,
) -> torch.Tensor:
    """Upstream's ``CausalConditionalCFM.basic_euler`` (without its print and progress
    bar): the meanflow decoder is distilled with guidance, so it runs once per step."""
    in_dtype = x.dtype
    dtype = getattr(estimator, "dtype", x.dtype)
    x, mu, mask, spks = x.to(dtype), mu.to(dtype), mask.to(dtype), spks.to(dtype)
    cond = conds.transpose(1, 2).to(dtype)
    t_span = t_span.to(dtype)
    for t, r in itertools.pairwise(t_span):
        dxdt = estimator.forward(x, mask=mask, mu=mu, t=t[None], spks=spks, cond=cond, r=r[None])
        x = x + (r - t) * dxdt
    return x.to(in_dtype)
