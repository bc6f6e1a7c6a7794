"""Text sent at a pace, as a typist or an LLM would send it.

``typed(text, chars_per_s)`` cuts a text into one-character pieces, ``tokens(text,
tokens_per_s)`` into word tokens (each but the first with its leading space); a piece is
``(text, gap_s)``: the time from it to the next. ``send_paced(ctx, pieces, sent_at)``
sends them on that schedule (each piece is due ``gap_s`` after the previous one was due,
so a slow send does not shift the rest), appends ``(end offset, time.perf_counter())`` to
``sent_at`` as each piece goes out, then ends the context. ``sent_by(sent_at, end)`` is
when the text up to offset ``end`` had all been sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from speakstream.client import Context

Piece = tuple[str, float]  # (text, seconds until the next piece is due)
SentAt = list[tuple[int, float]]  # (end offset of the text sent so far, perf_counter time)


def typed(text: str, chars_per_s: float) -> list[Piece]:
    return [(ch, 1.0 / chars_per_s) for ch in text]


def tokens(text: str, tokens_per_s: float) -> list[Piece]:
    words = text.split(" ")
    return [(w if i == 0 else " " + w, 1.0 / tokens_per_s) for i, w in enumerate(words)]


async def send_paced(ctx: Context, pieces: Iterable[Piece], sent_at: SentAt) -> None:
    offset = 0
    next_at = time.perf_counter()
    for text, gap_s in pieces:
        delay_s = next_at - time.perf_counter()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        offset += len(text)
        sent_at.append((offset, time.perf_counter()))
        await ctx.send(text)
        next_at += gap_s
    await ctx.end()


def sent_by(sent_at: SentAt, end: int) -> float | None:
    """When the text up to offset ``end`` had all been sent (None: not yet)."""
    return next((t for offset, t in sent_at if offset >= end), None)
