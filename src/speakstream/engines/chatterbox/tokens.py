"""Chatterbox's T3 speech-token sampling, one token per step.

``speech_tokens`` is upstream's ``T3.inference`` loop (same prompt layout, classifier-free
guidance, repetition penalty, min-p and top-p, temperature) rewritten as a generator: it
yields each speech token as soon as it is sampled, so the vocoder can start before the
sentence's tokens are all there, and its caller stops it between any two steps.
Differences from upstream: ``cfg_weight == 0`` runs one sequence instead of crashing on
the missing unconditional one; sampling draws from the caller's ``torch.Generator``
(``seed`` makes it reproducible); ``lock`` (the model's) is held for one step at a time,
so several utterances share one model turn by turn; ``should_stop`` is checked before
every step; at most ``max_new_tokens`` are made.

``turbo_speech_tokens`` is the same for ``T3.inference_turbo`` (the turbo variant's
GPT-2 T3): no guidance and no learned positions (GPT-2 has its own), its processors in
upstream's order (temperature, top-k, top-p, repetition penalty), the first token
sampled from the prompt's last position. A KV-cached step per token, like the
standard's, so it streams the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float = 0.8
    cfg_weight: float = 0.5
    repetition_penalty: float = 1.2
    min_p: float = 0.05
    top_p: float = 1.0
    max_new_tokens: int = 1000
    top_k: int = 0  # turbo only (upstream's 1000); 0: off


TURBO_DEFAULTS = SamplingParams(cfg_weight=0.0, min_p=0.0, top_p=0.95, top_k=1000)


def speech_tokens(
    t3: Any,
    cond: Any,
    text_tokens: torch.Tensor,
    params: SamplingParams,
    *,
    generator: torch.Generator,
    lock: threading.Lock,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[int]:
    """Speech token ids (below the stop token), until T3's stop token, the bound, or
    ``should_stop()``. ``text_tokens``: (1, N) ids without start/stop."""
    from transformers.generation.logits_process import (
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TopPLogitsWarper,
    )

    hp = t3.hp
    device = t3.device
    guided = params.cfg_weight > 0.0
    tokens = text_tokens.to(device=device, dtype=torch.long)
    if guided:
        tokens = torch.cat([tokens, tokens], dim=0)  # row 1 becomes the unconditional one
    tokens = F.pad(tokens, (1, 0), value=hp.start_text_token)
    tokens = F.pad(tokens, (0, 1), value=hp.stop_text_token)
    batch = tokens.size(0)
    start = torch.full((batch, 1), hp.start_speech_token, dtype=torch.long, device=device)
    repetition = RepetitionPenaltyLogitsProcessor(penalty=float(params.repetition_penalty))
    min_p = MinPLogitsWarper(min_p=params.min_p)
    top_p = TopPLogitsWarper(top_p=params.top_p)
    generated = cast(torch.LongTensor, start[:1].clone())
    with lock, torch.inference_mode():
        embeds, _ = t3.prepare_input_embeds(
            t3_cond=cond, text_tokens=tokens, speech_tokens=start, cfg_weight=params.cfg_weight
        )
        bos = t3.speech_emb(start) + t3.speech_pos_emb.get_fixed_embedding(0)
        out = t3.tfmr(inputs_embeds=torch.cat([embeds, bos], dim=1), use_cache=True)
    past = out.past_key_values
    hidden = out.last_hidden_state[:, -1:, :]
    for step in range(params.max_new_tokens):
        if should_stop():
            return
        with lock, torch.inference_mode():
            logits = t3.speech_head(hidden)[:, -1, :]
            if guided:
                cond_logits, uncond_logits = logits[0:1], logits[1:2]
                logits = cond_logits + params.cfg_weight * (cond_logits - uncond_logits)
            logits = repetition(generated, logits)
            if params.temperature != 1.0:
                logits = logits / params.temperature
            logits = top_p(generated, min_p(generated, logits))
            probs = torch.softmax(logits, dim=-1)
            token = torch.multinomial(probs.cpu(), 1, generator=generator).to(device)
            token_id = int(token.item())
            if token_id == hp.stop_speech_token:
                return
            generated = cast(torch.LongTensor, torch.cat([generated, token], dim=1))
            embed = t3.speech_emb(token) + t3.speech_pos_emb.get_fixed_embedding(step + 1)
            out = t3.tfmr(
                inputs_embeds=embed.expand(batch, -1, -1), past_key_values=past, use_cache=True
            )
            past = out.past_key_values
            hidden = out.last_hidden_state
        yield token_id


def turbo_speech_tokens(
    t3: Any,
    cond: Any,
    text_tokens: torch.Tensor,
    params: SamplingParams,
    *,
    generator: torch.Generator,
    lock: threading.Lock,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[int]:
    """Speech token ids of turbo's T3, as ``speech_tokens``; ``text_tokens``: (1, N)
    GPT-2 ids (turbo adds no start/stop text tokens); ``cfg_weight`` and ``min_p`` are
    not used (upstream ignores them too)."""
    from transformers.generation.logits_process import (
        LogitsProcessor,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    processors: list[LogitsProcessor] = []
    if params.temperature > 0 and params.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(params.temperature))
    if params.top_k > 0:
        processors.append(TopKLogitsWarper(params.top_k))
    if params.top_p < 1.0:
        processors.append(TopPLogitsWarper(params.top_p))
    if params.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(float(params.repetition_penalty)))
    hp = t3.hp
    device = t3.device
    tokens = text_tokens.to(device=device, dtype=torch.long)
    start = torch.full((1, 1), hp.start_speech_token, dtype=torch.long, device=device)
    with lock, torch.inference_mode():
        embeds, _ = t3.prepare_input_embeds(
            t3_cond=cond, text_tokens=tokens, speech_tokens=start, cfg_weight=0.0
        )
        out = t3.tfmr(inputs_embeds=embeds, use_cache=True)
    past = out.past_key_values
    hidden = out.last_hidden_state[:, -1:, :]
    history = start  # upstream's first step sees the start token, later ones what was made
    generated: torch.Tensor | None = None
    for _ in range(params.max_new_tokens):
        if should_stop():
            return
        with lock, torch.inference_mode():
            logits = t3.speech_head(hidden)[:, -1, :]
            for process in processors:
                logits = process(cast(torch.LongTensor, history), logits)
            if bool(torch.all(logits == -float("inf"))):
                return
            probs = torch.softmax(logits.float(), dim=-1)
            token = torch.multinomial(probs.cpu(), 1, generator=generator).to(device)
            token_id = int(token.item())
            if token_id == hp.stop_speech_token:
                return
            generated = token if generated is None else torch.cat([generated, token], dim=1)
            history = generated
            out = t3.tfmr(inputs_embeds=t3.speech_emb(token), past_key_values=past, use_cache=True)
            past = out.past_key_values
            hidden = out.last_hidden_state
        yield token_id
