"""Word timings and barge-in splits through the real server with Piper."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from speakstream.client import AudioChunk, ContextResult, Event, connect
from speakstream.engines import Engine
from tests.conftest import running_server

pytestmark = pytest.mark.timeout(120)
RATE = 22050
TEXT = (
    "Good morning. The meeting moved to 10:30 a.m., and it costs $29.95 per seat; "
    "Dr. Smith will explain the rest."
)


async def speak_aligned(url: str, text: str) -> ContextResult:
    async with connect(url) as conn:
        ctx = await conn.open_context("a", alignment=True)
        for word in re.findall(r"\S+\s*", text):  # arrive like LLM tokens
            await ctx.send(word)
        await ctx.end()
        return await ctx.collect()


def alignments(result: ContextResult) -> list[dict[str, Any]]:
    return [e.data for e in result.events if e.type == "alignment"]


async def test_alignment_covers_every_word_in_order(piper_engine: Engine) -> None:
    async with running_server(piper_engine) as srv:
        result = await speak_aligned(srv.stream_url, TEXT)
    assert not result.errors
    words = [w for a in alignments(result) for w in a["words"]]
    assert [w["word"] for w in words] == TEXT.split()
    assert all(TEXT[w["start"] : w["end"]] == w["word"] for w in words)
    starts = [w["start_ms"] for w in words]
    assert starts == sorted(starts), "never goes back"
    ends = [w["start_ms"] + w["duration_ms"] for w in words]
    assert all(e >= s for s, e in zip(starts, ends, strict=True))
    chars = [c for a in alignments(result) for c in a["chars"]]
    assert "".join(c["char"] for c in chars) == "".join(TEXT.split())
    # each alignment comes before the audio it describes
    seen: set[int] = set()
    order = sorted([*result.events, *result.chunks], key=lambda i: i.received_s)
    for item in order:
        if isinstance(item, Event) and item.type == "alignment":
            seen.add(item.data["seq"])
        if isinstance(item, AudioChunk) and item.segment in {a["seq"] for a in alignments(result)}:
            assert item.segment in seen


async def test_word_edges_match_the_audio(piper_engine: Engine) -> None:
    async with running_server(piper_engine) as srv:
        result = await speak_aligned(srv.stream_url, TEXT)
    # each segment's audio on the context clock, from the frames' segment numbers
    spans: dict[int, tuple[int, np.ndarray]] = {}
    position = 0
    for chunk in result.chunks:
        samples = np.frombuffer(chunk.data, dtype="<i2")
        start, previous = spans.get(chunk.segment, (position, np.zeros(0, dtype="<i2")))
        spans[chunk.segment] = (start, np.concatenate([previous, samples]))
        position += samples.size
    by_segment: dict[int, list[dict[str, Any]]] = {}
    for alignment in alignments(result):  # one per engine chunk; a segment may have several
        by_segment.setdefault(alignment["seq"], []).extend(alignment["words"])
    checked = 0
    for seq, words in by_segment.items():
        start_sample, audio = spans[seq]
        loud = np.flatnonzero(np.abs(audio.astype(np.float32) / 32767) >= 0.004)
        first_sound_ms = 1000 * (start_sample + loud[0]) / RATE
        audio_end_ms = 1000 * (start_sample + audio.size) / RATE
        last_end_ms = words[-1]["start_ms"] + words[-1]["duration_ms"]
        assert abs(words[0]["start_ms"] - first_sound_ms) <= 50, (seq, words)
        assert abs(audio_end_ms - last_end_ms) <= 50, (seq, words)
        checked += 1
    assert checked >= 3


async def test_cancel_with_played_ms_splits_at_the_right_word(piper_engine: Engine) -> None:
    sentence = "One two three four five six seven eight."
    async with running_server(piper_engine) as srv, connect(srv.stream_url) as conn:
        ctx = await conn.open_context("n", alignment=True)
        await ctx.send(sentence)
        await ctx.end()
        result = await ctx.collect()
        words = {w["word"]: w for a in alignments(result) for w in a["words"]}
        played = words["four"]["start_ms"] + words["four"]["duration_ms"] + 1
        # the audio is all delivered; the client is still playing it when the user speaks
        await ctx.cancel(played_ms=played)
        answer = await conn.next_event(10)
    assert answer.type == "cancelled"
    assert answer.data["spoken_text"] == "One two three four"
    assert answer.data["unspoken_text"] == " five six seven eight."
    assert answer.data["split_offset"] == len("One two three four")


async def test_cancel_mid_utterance_reports_both_sides(piper_engine: Engine) -> None:
    text = "This is the first sentence. " * 8
    async with running_server(piper_engine) as srv, connect(srv.stream_url) as conn:
        ctx = conn.context("m")
        await ctx.send(text)
        await ctx.end()
        async for item in ctx:
            if isinstance(item, AudioChunk):
                break
        await ctx.cancel(played_ms=300)
        answer = [i async for i in ctx if isinstance(i, Event) and i.type == "cancelled"].pop()
    data = answer.data
    spoken, unspoken = data["spoken_text"], data["unspoken_text"]
    assert spoken + unspoken == text  # nothing lost: what was not heard is all there
    assert data["split_offset"] == len(spoken)
    assert spoken in ("", "This")  # at most the first word fits in 300 ms
    assert len(unspoken) > len(text) / 2


async def test_alignment_needs_an_engine_with_timings(fake_engine_factory) -> None:  # type: ignore[no-untyped-def]
    async with running_server(fake_engine_factory()) as srv, connect(srv.stream_url) as conn:
        assert conn.ready["capabilities"]["alignment"] is False
        ctx = await conn.open_context("x", alignment=True)
        first = await anext(aiter(ctx))
    assert isinstance(first, Event) and first.data["code"] == "alignment_unsupported"


async def test_segments_cut_inside_a_sentence_keep_exact_timings_and_only_their_words(
    piper_engine: Engine,
) -> None:
    # flushes force cuts inside one sentence: each later segment is said after the words
    # before it (context-carrying synthesis), and only its own words' audio comes back
    pieces = ["Have you ever ", "wondered why the ", "sky turns orange at sunset?"]
    text = "".join(pieces)
    async with running_server(piper_engine) as srv, connect(srv.stream_url) as conn:
        ctx = await conn.open_context("c", alignment=True)
        for piece in pieces:
            await ctx.send(piece)
            await ctx.flush()
        await ctx.end()
        result = await ctx.collect()
    segments = [e.data for e in result.events if e.type == "segment"]
    assert len(segments) >= len(pieces)
    words = [w for a in alignments(result) for w in a["words"]]
    assert [w["word"] for w in words] == text.split()
    assert all(text[w["start"] : w["end"]] == w["word"] for w in words)
    starts = [w["start_ms"] for w in words]
    assert starts == sorted(starts)
    # the audio is as long as the words say: no context word's audio was sent
    audio_ms = 1000 * sum(len(c.data) // 2 for c in result.chunks) / RATE
    last = words[-1]
    last_end_ms = last["start_ms"] + last["duration_ms"]  # (rounded to 0.01 ms on the wire)
    assert last_end_ms - 0.1 <= audio_ms <= last_end_ms + 1000
