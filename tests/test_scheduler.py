from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from speakstream.audio.pcm import PcmChunk
from speakstream.engines.base import EngineCapabilities, SynthesisOptions, VoiceInfo
from speakstream.scheduler import EnginePool, JobClock, SynthesisTimeoutError
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(30)


class GatedEngine:
    """Each synthesize call blocks until the test opens its gate; records concurrency."""

    def __init__(self) -> None:
        self.gates: dict[str, threading.Event] = {}
        self.started: list[str] = []
        self.active = 0
        self.max_active = 0
        self.lock = threading.Lock()
        self.capabilities = EngineCapabilities("gated", (VoiceInfo("v", 8000),), "v", True, False)

    def gate(self, text: str) -> threading.Event:
        return self.gates.setdefault(text, threading.Event())

    def synthesize(self, text: str, voice: str, options: SynthesisOptions) -> Iterator[PcmChunk]:
        with self.lock:
            self.started.append(text)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            for _ in range(3):
                assert self.gate(text).wait(10)
                yield PcmChunk(np.zeros(80, dtype=np.float32), 8000)
        finally:
            with self.lock:
                self.active -= 1

    def close(self) -> None:
        pass


async def collect(
    pool: EnginePool,
    text: str,
    first: bool = False,
    timeout_s: float = 10,
    owner: object = None,
    start_by_s: float = 0.0,
) -> int:
    clock = JobClock()
    n = 0
    async for _ in pool.stream(
        lambda: pool.engine.synthesize(text, "v", SynthesisOptions()),
        first=first,
        timeout_s=timeout_s,
        clock=clock,
        owner=owner,
        start_by_s=start_by_s,
    ):
        n += 1
    assert clock.finished_s is not None and clock.first_chunk_after_s is not None
    assert clock.synthesis_s >= clock.first_chunk_after_s >= 0
    return n


async def test_pool_bounds_threads_and_serves_first_segments_first() -> None:
    engine = GatedEngine()
    pool = EnginePool(engine, max_workers=1)
    try:
        running = asyncio.create_task(collect(pool, "busy"))
        await wait_for(lambda: engine.started == ["busy"])
        later = asyncio.create_task(collect(pool, "later"))
        await wait_for(lambda: pool.waiting_jobs == 1)
        first = asyncio.create_task(collect(pool, "first", first=True))
        await wait_for(lambda: pool.waiting_jobs == 2)
        for text in ("busy", "later", "first"):
            engine.gate(text).set()
        assert await asyncio.gather(running, later, first) == [3, 3, 3]
        assert engine.started == ["busy", "first", "later"]
        assert engine.max_active == 1
        # the worker threads return just after handing over their last chunk
        await wait_for(lambda: pool.running_jobs == 0 and pool.waiting_jobs == 0)
    finally:
        pool.close()


async def test_cancelled_waiting_job_leaves_the_queue() -> None:
    engine = GatedEngine()
    pool = EnginePool(engine, max_workers=1)
    try:
        running = asyncio.create_task(collect(pool, "busy"))
        await wait_for(lambda: engine.started == ["busy"])
        waiting = asyncio.create_task(collect(pool, "never"))
        await wait_for(lambda: pool.waiting_jobs == 1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        engine.gate("busy").set()
        await running
        assert "never" not in engine.started
        engine.gate("next").set()
        assert await collect(pool, "next") == 3  # the slot is free again
    finally:
        pool.close()


async def test_timeout_stops_the_job_and_the_slot_returns_when_the_thread_does() -> None:
    engine = GatedEngine()
    pool = EnginePool(engine, max_workers=1)
    try:
        with pytest.raises(SynthesisTimeoutError):
            await collect(pool, "slow", timeout_s=0.1)
        assert pool.running_jobs == 1  # the thread is still blocked inside the engine
        engine.gate("slow").set()
        await wait_for(lambda: pool.running_jobs == 0)
        assert engine.active == 0  # the thread stopped after its current chunk
    finally:
        pool.close()


async def test_engine_errors_reach_the_caller() -> None:
    class Broken(GatedEngine):
        def synthesize(
            self, text: str, voice: str, options: SynthesisOptions
        ) -> Iterator[PcmChunk]:
            raise ValueError("broken model")

    pool = EnginePool(Broken(), max_workers=2)
    try:
        with pytest.raises(ValueError, match="broken model"):
            await collect(pool, "x")
        await wait_for(lambda: pool.running_jobs == 0)
    finally:
        pool.close()


async def test_later_segments_wait_while_a_first_segment_runs() -> None:
    engine = GatedEngine()
    pool = EnginePool(engine, max_workers=2)
    try:
        first = asyncio.create_task(collect(pool, "first", first=True))
        await wait_for(lambda: engine.started == ["first"])
        not_due_s = time.monotonic() + 60.0
        later = asyncio.create_task(collect(pool, "later", start_by_s=not_due_s))
        other_first = asyncio.create_task(collect(pool, "other-first", first=True))
        await wait_for(lambda: len(engine.started) == 2)
        assert engine.started == ["first", "other-first"]  # the free slot went to a first segment
        assert pool.waiting_jobs == 1
        for text in ("first", "other-first", "later"):
            engine.gate(text).set()
        await asyncio.gather(first, later, other_first)
        assert engine.started[-1] == "later"
    finally:
        pool.close()


async def test_a_later_segment_that_is_due_starts_while_a_first_segment_runs() -> None:
    # Under load the rule above made a second segment already due wait for other
    # contexts' first segments, and its listener ran dry (issue 11).
    engine = GatedEngine()
    pool = EnginePool(engine, max_workers=2)
    try:
        first = asyncio.create_task(collect(pool, "first", first=True))
        await wait_for(lambda: engine.started == ["first"])
        due = asyncio.create_task(collect(pool, "due", start_by_s=time.monotonic() - 0.01))
        await wait_for(lambda: engine.started == ["first", "due"])
        for text in ("first", "due"):
            engine.gate(text).set()
        await asyncio.gather(first, due)
    finally:
        pool.close()


async def test_a_held_back_later_segment_starts_when_it_becomes_due() -> None:
    engine = GatedEngine()
    pool = EnginePool(engine, max_workers=2)
    try:
        first = asyncio.create_task(collect(pool, "first", first=True))
        await wait_for(lambda: engine.started == ["first"])
        due_s = time.monotonic() + 0.2
        later = asyncio.create_task(collect(pool, "later", start_by_s=due_s))
        await wait_for(lambda: engine.started == ["first", "later"])  # the first still runs
        assert time.monotonic() >= due_s
        for text in ("first", "later"):
            engine.gate(text).set()
        await asyncio.gather(first, later)
    finally:
        pool.close()


async def test_the_last_free_worker_is_kept_for_a_connection_with_nothing_running() -> None:
    # Regression (issue 14, defect 4): a client sending without pause held every worker,
    # so another client's first words waited for one of its segments to finish.
    engine = GatedEngine()
    pool = EnginePool(engine, max_workers=2)
    try:
        flood = [asyncio.create_task(collect(pool, f"flood{i}", owner="a")) for i in range(3)]
        await wait_for(lambda: engine.started == ["flood0"])
        await wait_for(lambda: pool.waiting_jobs == 2)  # "a" may not take the last worker
        newcomer = asyncio.create_task(collect(pool, "hello", owner="b"))
        await wait_for(lambda: "hello" in engine.started)  # at once, nothing had to finish
        engine.gate("hello").set()
        assert await newcomer == 3
        for i in range(3):
            engine.gate(f"flood{i}").set()
        assert await asyncio.gather(*flood) == [3, 3, 3]
        assert engine.max_active == 2
    finally:
        pool.close()


async def test_a_lone_connection_still_uses_every_worker_but_the_last() -> None:
    engine = GatedEngine()
    pool = EnginePool(engine, max_workers=3)
    try:
        jobs = [asyncio.create_task(collect(pool, f"j{i}", owner="a")) for i in range(3)]
        await wait_for(lambda: len(engine.started) == 2 and pool.waiting_jobs == 1)
        for i in range(3):
            engine.gate(f"j{i}").set()
        assert await asyncio.gather(*jobs) == [3, 3, 3]
    finally:
        pool.close()


async def test_waiting_jobs_are_served_earliest_deadline_first() -> None:
    engine = GatedEngine()
    pool = EnginePool(engine, max_workers=1)

    async def job(text: str, start_by_s: float) -> None:
        async for _ in pool.stream(
            lambda: engine.synthesize(text, "v", SynthesisOptions()),
            first=False,
            timeout_s=10,
            clock=JobClock(),
            start_by_s=start_by_s,
        ):
            pass

    try:
        busy = asyncio.create_task(job("busy", 0.0))
        await wait_for(lambda: engine.started == ["busy"])
        later = asyncio.create_task(job("relaxed", 50.0))
        await wait_for(lambda: pool.waiting_jobs == 1)
        urgent = asyncio.create_task(job("urgent", 10.0))
        await wait_for(lambda: pool.waiting_jobs == 2)
        for text in ("busy", "relaxed", "urgent"):
            engine.gate(text).set()
        await asyncio.gather(busy, later, urgent)
        assert engine.started == ["busy", "urgent", "relaxed"]
    finally:
        pool.close()


async def test_a_segment_due_later_than_the_horizon_leaves_the_last_worker_free() -> None:
    # A long segment cannot be stopped once started: taking the last worker for audio
    # due in many seconds would make the next first segment (or due one) wait for it.
    engine = GatedEngine()
    pool = EnginePool(engine, max_workers=2, reserve_horizon_s=1.0)
    try:
        busy = asyncio.create_task(collect(pool, "busy", owner="a"))
        await wait_for(lambda: engine.started == ["busy"])
        far = asyncio.create_task(collect(pool, "far", owner="b", start_by_s=time.monotonic() + 60))
        await wait_for(lambda: pool.waiting_jobs == 1)  # queued: the grant has passed it by
        assert engine.started == ["busy"]
        soon = asyncio.create_task(
            collect(pool, "soon", owner="c", start_by_s=time.monotonic() + 0.5)
        )
        await wait_for(lambda: engine.started == ["busy", "soon"])  # due within the horizon
        engine.gate("busy").set()
        await busy
        # the worker's thread returned and the pool granted again (one callback does both)
        await wait_for(lambda: pool.running_jobs == 1)
        assert engine.started == ["busy", "soon"] and pool.waiting_jobs == 1  # still kept
        engine.gate("soon").set()
        await soon
        await wait_for(lambda: engine.started == ["busy", "soon", "far"])  # two free: it starts
        engine.gate("far").set()
        await far
    finally:
        pool.close()


async def test_a_first_segment_takes_an_extra_thread_while_every_worker_is_busy() -> None:
    # A newcomer's first words waited for a long segment to end (issue 11: first audio p95
    # 300-465 ms at 8 listeners); with an extra thread for first segments they start at once.
    engine = GatedEngine()
    pool = EnginePool(engine, max_workers=2, first_extra_workers=1)
    due_s = time.monotonic() - 0.01
    try:
        busy = [
            asyncio.create_task(collect(pool, f"long-{i}", owner=i, start_by_s=due_s))
            for i in range(2)
        ]
        await wait_for(lambda: len(engine.started) == 2)
        later = asyncio.create_task(collect(pool, "later", owner=2, start_by_s=due_s))
        first = asyncio.create_task(collect(pool, "first", first=True, owner=3))
        await wait_for(lambda: "first" in engine.started)
        assert "later" not in engine.started  # the extra thread is for first segments only
        other_first = asyncio.create_task(collect(pool, "other-first", first=True, owner=4))
        await wait_for(lambda: pool.waiting_jobs == 2)  # one extra thread, taken
        assert engine.max_active == 3
        engine.gate("first").set()
        await first  # its thread back: the next first segment takes it
        await wait_for(lambda: "other-first" in engine.started)
        assert "later" not in engine.started and engine.max_active == 3
        engine.gate("long-0").set()
        await wait_for(lambda: "later" in engine.started)  # a worker: the later segment
        for text in ("long-1", "later", "other-first"):
            engine.gate(text).set()
        await asyncio.gather(*busy, later, other_first)
        assert engine.max_active == 3  # never more threads than workers + extra
        await wait_for(lambda: pool.running_jobs == 0)
        # every slot came back: two workers and the extra thread
        again = [asyncio.create_task(collect(pool, f"again-{i}", owner=i)) for i in range(2)]
        await wait_for(lambda: sum(t.startswith("again") for t in engine.started) == 2)
        third = asyncio.create_task(collect(pool, "third-first", first=True, owner=9))
        await wait_for(lambda: "third-first" in engine.started)
        for text in ("again-0", "again-1", "third-first"):
            engine.gate(text).set()
        await asyncio.gather(*again, third)
    finally:
        pool.close()


async def test_a_first_segment_cancelled_on_an_extra_thread_gives_it_back() -> None:
    engine = GatedEngine()
    pool = EnginePool(engine, max_workers=1, first_extra_workers=1)
    try:
        busy = asyncio.create_task(collect(pool, "busy"))
        await wait_for(lambda: engine.started == ["busy"])
        first = asyncio.create_task(collect(pool, "first", first=True))
        await wait_for(lambda: engine.started == ["busy", "first"])
        first.cancel()
        engine.gate("first").set()  # the thread returns at its next chunk
        await asyncio.gather(first, return_exceptions=True)
        await wait_for(lambda: pool.running_jobs == 1)
        second = asyncio.create_task(collect(pool, "second", first=True))
        await wait_for(lambda: engine.started[-1] == "second")
        for text in ("busy", "second"):
            engine.gate(text).set()
        await asyncio.gather(busy, second)
    finally:
        pool.close()


async def test_behind_other_first_segments_a_first_segment_waits_its_turn() -> None:
    # Short first segments all alike (clients arriving at once) finish sooner one after
    # another than sharing the cores: the extra thread is for waits behind later segments.
    engine = GatedEngine()
    pool = EnginePool(engine, max_workers=2, first_extra_workers=1)
    try:
        firsts = [
            asyncio.create_task(collect(pool, f"first-{i}", first=True, owner=i)) for i in range(3)
        ]
        await wait_for(lambda: len(engine.started) == 2 and pool.waiting_jobs == 1)
        engine.gate(engine.started[0]).set()
        await wait_for(lambda: len(engine.started) == 3)
        for text in engine.started:
            engine.gate(text).set()
        await asyncio.gather(*firsts)
        assert engine.max_active == 2
    finally:
        pool.close()
