"""Timing and fault behaviour with the scripted fake engine (never a stand-in for Piper)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from speakstream.client import connect
from speakstream.protocol.frames import unpack_audio_frame
from tests.conftest import running_server, wait_for

pytestmark = pytest.mark.timeout(60)


async def test_synthesis_timeout_reports_and_the_context_goes_on(fake_engine_factory) -> None:  # type: ignore[no-untyped-def]
    engine = fake_engine_factory(hang_on="Stall", hang_s=2.0)
    async with running_server(engine, task_timeout=0.3) as srv:
        async with await connect(srv.stream_url) as conn:
            ctx = conn.context("t")
            await ctx.send("Stall here. Then speak normally. ")
            await ctx.end()
            result = await ctx.collect()
        [error] = result.errors
        assert error.data["code"] == "synthesis_timeout"
        assert error.data["segment"] == 0 and error.data["retryable"] is True
        assert result.audio, "the later segment still speaks"
        segments = {e.data["seq"]: e.data["text"] for e in result.events if e.type == "segment"}
        assert "Stall" in segments[0] and len(segments) >= 2
        assert {c.segment for c in result.chunks} == set(segments) - {0}  # all but the stalled
        assert result.first("done") is not None
        # the hung worker thread still holds its slot until it returns, then frees it
        await wait_for(lambda: srv.runtime.pool.running_jobs == 0)


async def test_engine_failure_reports_and_the_context_goes_on(fake_engine_factory) -> None:  # type: ignore[no-untyped-def]
    engine = fake_engine_factory(fail_on="Boom")
    async with running_server(engine) as srv, await connect(srv.stream_url) as conn:
        ctx = conn.context()
        await ctx.send("Hello first. Boom goes this. And then more.")
        await ctx.end()
        result = await ctx.collect()
    [error] = result.errors
    segments = {e.data["seq"]: e.data["text"] for e in result.events if e.type == "segment"}
    failed = error.data["segment"]
    assert error.data["code"] == "synthesis_failed" and "Boom" in segments[failed]
    assert {c.segment for c in result.chunks} == set(segments) - {failed}
    assert len(segments) >= 3


async def test_streaming_engine_chunks_arrive_before_the_segment_ends(fake_engine_factory) -> None:  # type: ignore[no-untyped-def]
    # 20 chunks of 50 ms, each taking a while to make: with immediate_send the first
    # chunk is delivered while the rest are still being synthesized.
    engine = fake_engine_factory(ms_per_char=50, chunk_ms=50, synthesis_s_per_char=0.01)
    async with (
        running_server(engine, min_text_length=20) as srv,
        await connect(srv.stream_url) as conn,
    ):
        ctx = conn.context()
        await ctx.send("abcdefghijklmnopqrst ")
        await ctx.end()
        result = await ctx.collect()
    assert len(result.chunks) == 20
    spread_s = result.chunks[-1].received_s - result.chunks[0].received_s
    assert spread_s > 0.05  # chunks came one by one, not as one block at the end


# Whether audio leaves before its segment is whole (immediate_send) is checked
# deterministically, with a gated engine, in test_connection.py.


async def test_order_holds_under_backpressure_with_a_slow_reader(fake_engine_factory) -> None:  # type: ignore[no-untyped-def]
    # Regression: with blocking puts, a job task and the task releasing the segment before
    # it could both wait on a full queue and wake in the wrong order: frames out of order,
    # `flushed` before the audio it answers. Many small chunks, two segments in parallel,
    # a queue of 2 and a client that reads slowly make those waits happen.
    engine = fake_engine_factory(ms_per_char=40, chunk_ms=5, synthesis_s_per_char=0.002)
    async with running_server(engine, queue_size=2, min_text_length=5) as srv:
        ws = await websockets.connect(srv.stream_url, max_size=None, max_queue=1)
        await ws.recv()
        for i in range(3):
            await ws.send(
                json.dumps(
                    {
                        "type": "text",
                        "context": f"c{i}",
                        "text": "Hello there. General Kenobi. You are a bold one. ",
                    }
                )
            )
            await ws.send(json.dumps({"type": "flush", "context": f"c{i}"}))
            await ws.send(json.dumps({"type": "end", "context": f"c{i}"}))
        stream_of: dict[int, str] = {}
        frames: dict[str, list[int]] = {}
        last_kind: dict[str, str] = {}
        done = 0
        while done < 3:
            await asyncio.sleep(0.001)  # a slow reader
            message = await ws.recv()
            if isinstance(message, bytes):
                header, _ = unpack_audio_frame(message)
                ctx = stream_of[header.stream]
                assert last_kind.get(ctx) not in ("flushed", "done"), "audio after flushed/done"
                frames.setdefault(ctx, []).append(header.frame)
                continue
            data = json.loads(message)
            if data["type"] == "segment":
                stream_of[data["stream"]] = data["context"]
            if data["type"] in ("flushed", "done"):
                last_kind[data["context"]] = data["type"]
            done += data["type"] == "done"
        await ws.close()
        # the test is only worth something if the server really had to wait for the reader
        assert srv.runtime.backpressure_waits > 0
    for ctx, numbers in frames.items():
        assert numbers == list(range(len(numbers))), ctx


class _ScriptedFaults:
    """The fake engine, with faults by text: "NaN" yields non-finite samples, "Rate"
    yields audio at a rate the voice does not have."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def capabilities(self) -> Any:
        return self.inner.capabilities

    def synthesize(self, text: str, voice: str, options: Any) -> Any:
        import numpy as np

        from speakstream.audio.pcm import PcmChunk

        for chunk in self.inner.synthesize(text, voice, options):
            if "NaN" in text:
                bad = chunk.samples.copy()
                bad[::7] = np.nan
                bad[1::7] = np.inf
                yield PcmChunk(bad, chunk.sample_rate_hz)
            elif "Rate" in text:
                yield PcmChunk(chunk.samples, chunk.sample_rate_hz * 2)
            else:
                yield chunk

    def close(self) -> None:
        self.inner.close()


async def test_non_finite_engine_audio_is_cleaned_not_sent(fake_engine_factory) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    engine = _ScriptedFaults(fake_engine_factory())
    async with running_server(engine) as srv, await connect(srv.stream_url) as conn:
        ctx = await conn.open_context("n", encoding="pcm_f32le")
        await ctx.send("NaN audio here. ")
        await ctx.end()
        result = await ctx.collect()
    samples = np.frombuffer(result.audio, dtype="<f4")
    assert samples.size and np.isfinite(samples).all() and np.abs(samples).max() <= 1.0


async def test_audio_at_a_wrong_rate_stops_that_context_only(fake_engine_factory) -> None:  # type: ignore[no-untyped-def]
    engine = _ScriptedFaults(fake_engine_factory())
    async with running_server(engine) as srv, await connect(srv.stream_url) as conn:
        bad, good = conn.context("bad"), conn.context("good")
        await bad.send("Rate mismatch here. ")
        await good.send("All is well here. ")
        await bad.end()
        await good.end()
        bad_result, good_result = await bad.collect(), await good.collect()
        assert [e.data["code"] for e in bad_result.errors] == ["encoding_failed"]
        assert bad_result.first("done") is not None  # its events still come
        assert good_result.audio and not good_result.errors
        await wait_for(lambda: srv.runtime.pool.running_jobs == 0)
    # the failed stream was counted out once, like every other
    await wait_for(lambda: srv.runtime.active_streams == 0)


async def test_one_hung_context_does_not_hold_up_another_connection(fake_engine_factory) -> None:  # type: ignore[no-untyped-def]
    engine = fake_engine_factory(hang_on="Stall", hang_s=3.0)
    async with running_server(engine, task_timeout=0.5, max_concurrent_tasks=2) as srv:
        async with await connect(srv.stream_url) as slow, await connect(srv.stream_url) as fast:
            stalled = slow.context("s")
            await stalled.send("Stall forever. ")
            await stalled.end()
            quick = fast.context("f")
            await quick.send("Quick words here. ")
            await quick.end()
            quick_result = await quick.collect()  # done while the other job still hangs
            assert quick_result.audio and not quick_result.errors
            stalled_result = await stalled.collect()
        assert [e.data["code"] for e in stalled_result.errors] == ["synthesis_timeout"]
        await wait_for(lambda: srv.runtime.pool.running_jobs == 0)  # the worker came back


async def test_a_connection_is_refused_busy_with_1013_when_the_engine_is_at_capacity(
    fake_engine_factory: Any,
) -> None:
    async with running_server(fake_engine_factory()) as srv:
        capacity = srv.runtime.session_config.capacity
        assert capacity is not None
        capacity.active = capacity.listeners_limit  # as if that many were speaking
        async with websockets.connect(srv.stream_url) as ws:
            error = json.loads(await ws.recv())
            assert error["code"] == "busy" and error["retry_after_ms"] > 0
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1013
        capacity.active = 0
        async with await connect(srv.stream_url) as conn:  # admitted again
            ctx = conn.context()
            await ctx.send("Hello again. ")
            await ctx.end()
            assert (await ctx.collect()).audio


async def test_all_audio_of_a_flush_comes_before_flushed_at_a_resampled_rate(
    fake_engine_factory: Any,
) -> None:
    # Regression: the resampler's held-back samples left only at the end of the context,
    # after `flushed` (the fake voice is 16 kHz; the client asks for 8 kHz).
    async with (
        running_server(fake_engine_factory()) as srv,
        websockets.connect(srv.stream_url) as ws,
    ):
        await ws.recv()  # ready
        start = {"type": "start", "context": "f", "encoding": "pcm_s16le"}
        await ws.send(json.dumps(start | {"sample_rate_hz": 8000}))
        await ws.send(json.dumps({"type": "text", "context": "f", "text": "Hello there. "}))
        await ws.send(json.dumps({"type": "flush", "context": "f"}))
        audio_bytes = 0
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                audio_bytes += len(message) - 16
            elif json.loads(message)["type"] == "flushed":
                break
        # nothing of that text is held back: ending the context adds no audio
        await ws.send(json.dumps({"type": "end", "context": "f"}))
        after = []
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                after.append(len(message) - 16)
            elif json.loads(message)["type"] == "done":
                break
        assert audio_bytes > 0 and sum(after) == 0, (audio_bytes, after)
