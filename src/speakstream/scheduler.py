"""The engine worker pool: a fixed number of threads shared by every connection.

* Admission: at most ``max_workers`` jobs run at once, server-wide. Waiting jobs are
  served earliest deadline first (the time each must start for its listener not to run
  dry: a first segment's is its arrival), then a context's first segment before a later
  one (time to first audio matters most), then by arrival; while a first segment runs,
  later segments not yet due do not start; a later segment not due within
  ``reserve_horizon_s`` does not take the last free worker; and the last free worker is
  kept for a connection that has nothing running. ``first_extra_workers`` more threads
  take only first segments, and only while every worker is busy and one of them with a
  later segment: a newcomer's first words start at once, sharing the cores, instead of
  waiting for a long segment to end (a segment cannot be stopped once started). Behind
  other first segments (short, all alike) they wait: sharing the cores among equal short
  jobs makes each later than running them in turn.
  A waiting job that is cancelled simply leaves.
* Streaming: the blocking engine runs in a worker thread and hands each PCM chunk to the
  event loop as soon as it exists (``call_soon_threadsafe``); the loop never blocks.
* Cancel and deadline: the thread checks a flag between chunks. A worker slot is released
  only when its thread really returns, so the bound on threads is never exceeded.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from speakstream.audio.pcm import PcmChunk
from speakstream.engines.base import Engine
from speakstream.protocol.errors import SpeakstreamError

_LOGGER = logging.getLogger(__name__)


# A later segment due further ahead than this leaves the last free worker to others
# (measured on the virtual clock, tests/load_sim.py: with 1 s, 12 LLM-paced listeners
# arriving over 2 s had first audio p95 207 ms instead of 268 ms, and no underrun)
RESERVE_HORIZON_S = 1.0


class SynthesisTimeoutError(SpeakstreamError):
    """The job ran past its deadline."""


@dataclass(slots=True)
class JobClock:
    """``time.monotonic()`` stamps of one job (the session's clock), filled in as it goes."""

    queued_s: float = 0.0
    started_s: float | None = None
    first_chunk_s: float | None = None
    finished_s: float | None = None

    @property
    def queue_s(self) -> float:
        return (self.started_s or self.queued_s) - self.queued_s

    @property
    def first_chunk_after_s(self) -> float | None:
        """Engine time from the job's start to its first chunk."""
        if self.started_s is None or self.first_chunk_s is None:
            return None
        return self.first_chunk_s - self.started_s

    @property
    def synthesis_s(self) -> float:
        if self.started_s is None or self.finished_s is None:
            return 0.0
        return self.finished_s - self.started_s


@dataclass(slots=True)
class _Done:
    error: BaseException | None


@dataclass(order=True, slots=True)
class _Waiter:
    start_by_s: float  # earliest deadline first
    priority: int  # then a first segment (0) before a later one (1)
    order: int  # then by arrival
    owner: Hashable = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)
    extra: bool = field(default=False, compare=False)  # granted an extra thread


class EnginePool:
    def __init__(
        self,
        engine: Engine,
        max_workers: int,
        reserve_horizon_s: float = RESERVE_HORIZON_S,
        first_extra_workers: int = 0,
    ) -> None:
        self.engine = engine
        self.max_workers = max_workers
        self.reserve_horizon_s = reserve_horizon_s
        self._executor = ThreadPoolExecutor(
            max_workers + first_extra_workers, thread_name_prefix="speakstream-engine"
        )
        self._free = max_workers
        self._extra_free = first_extra_workers  # threads for first segments only
        self._running_first = 0
        self._running_later = 0
        self._running_by_owner: Counter[Hashable] = Counter()
        self._waiters: list[_Waiter] = []  # sorted: best priority, then arrival
        self._order = itertools.count()
        self.running_jobs = 0  # threads busy right now (also after their caller gave up)
        self._regrant: asyncio.TimerHandle | None = None

    @property
    def waiting_jobs(self) -> int:
        return sum(1 for w in self._waiters if not w.future.done())

    def _not_before_s(self, waiter: _Waiter) -> float:
        """When ``waiter`` may start at the earliest, by the rules for later segments:
        while a first segment is being synthesized, they wait until they are due (on a
        small machine a second job would steal the cores the first one needs, and later
        segments have the first segment's playback time as slack); and one due later
        than ``reserve_horizon_s`` takes the last free worker only once it is that close
        to due (a long segment cannot be stopped once started: the worker kept free
        takes first segments and due work, which would otherwise wait for it)."""
        if waiter.priority == 0:
            return -math.inf
        not_before_s = -math.inf
        if self._running_first > 0:
            not_before_s = waiter.start_by_s
        if self._free < 2 <= self.max_workers:
            not_before_s = max(not_before_s, waiter.start_by_s - self.reserve_horizon_s)
        return not_before_s

    def _may_start(self, waiter: _Waiter, now_s: float) -> bool:
        """By the rules for later segments (``_not_before_s``), and the last free worker
        is kept for an owner (a connection) with nothing running: one client sending
        without pause can never hold every worker while another client's first words
        wait."""
        if now_s < self._not_before_s(waiter):
            return False
        last_worker = self._free == 1 and self.max_workers > 1
        return not (last_worker and self._running_by_owner[waiter.owner] > 0)

    def _grant(self) -> None:
        """Hand free slots to waiters, best priority first, then by arrival; a later
        segment held back by the rules for later segments is looked at again when they
        let it start. With every worker busy, one of them with a later segment, a first
        segment takes an extra thread."""
        self._waiters = [w for w in self._waiters if not w.future.done()]
        now_s = time.monotonic()
        retry_s = math.inf
        for waiter in list(self._waiters):
            if self._free == 0:
                if self._extra_free == 0 or self._running_later == 0:
                    break
                if waiter.priority == 0:
                    self._start(waiter, extra=True)
                continue
            if not self._may_start(waiter, now_s):
                not_before_s = self._not_before_s(waiter)
                if not_before_s > now_s:
                    retry_s = min(retry_s, not_before_s)
                continue
            self._start(waiter, extra=False)
        if self._regrant is not None:
            self._regrant.cancel()
            self._regrant = None
        if retry_s < math.inf and self._free > 0:
            loop = asyncio.get_running_loop()  # its clock is time.monotonic()
            self._regrant = loop.call_at(retry_s, self._grant)

    def _start(self, waiter: _Waiter, *, extra: bool) -> None:
        self._waiters.remove(waiter)
        if extra:
            self._extra_free -= 1
        else:
            self._free -= 1
        self._running_by_owner[waiter.owner] += 1
        if waiter.priority == 0:
            self._running_first += 1
        else:
            self._running_later += 1
        waiter.extra = extra
        waiter.future.set_result(None)

    def _release(self, priority: int, owner: Hashable, extra: bool = False) -> None:
        if extra:
            self._extra_free += 1
        else:
            self._free += 1
        if priority == 0:
            self._running_first -= 1
        else:
            self._running_later -= 1
        self._running_by_owner[owner] -= 1
        if self._running_by_owner[owner] <= 0:
            del self._running_by_owner[owner]
        self._grant()

    async def _acquire(self, priority: int, owner: Hashable, start_by_s: float) -> bool:
        """Wait for a slot; True: an extra thread (for first segments only)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(start_by_s, priority, next(self._order), owner, fut)
        bisect.insort(self._waiters, waiter)
        self._grant()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # the slot was handed to us just as we were cancelled
                self._release(priority, owner, waiter.extra)
            raise
        return waiter.extra

    async def stream(
        self,
        make_chunks: Callable[[], Iterable[PcmChunk]],
        *,
        first: bool,
        timeout_s: float,
        clock: JobClock,
        owner: Hashable = None,
        start_by_s: float = 0.0,
        on_cancel: Callable[[], None] | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> AsyncGenerator[PcmChunk, None]:
        """Run ``make_chunks`` (the engine, and what shapes its output) in a worker thread,
        yielding chunks as they come.

        Raises ``SynthesisTimeoutError`` past ``timeout_s`` of synthesis (queueing not
        counted). ``clock`` is stamped as the job waits, starts, speaks and ends. ``owner``
        (a connection) is what the pool's fairness counts; None: the job's own.
        ``start_by_s`` (``time.monotonic``): when the job must start at the latest; the
        waiting job with the earliest goes first (then first segments, then arrival).
        ``on_cancel``: called (on the loop) when the caller stops before the work is done,
        so an engine can stop inside a chunk rather than at the next one. ``on_start``:
        called (on the loop) when a worker takes the job.
        """
        loop = asyncio.get_running_loop()
        clock.queued_s = time.monotonic()
        priority = 0 if first else 1
        owner = owner if owner is not None else object()
        extra = await self._acquire(priority, owner, start_by_s)
        clock.started_s = time.monotonic()
        if on_start is not None:
            on_start()
        cancel = threading.Event()
        chunks: asyncio.Queue[PcmChunk | _Done] = asyncio.Queue()

        def work() -> None:
            error: BaseException | None = None
            try:
                for chunk in make_chunks():
                    if cancel.is_set():
                        break
                    if clock.first_chunk_s is None:
                        clock.first_chunk_s = time.monotonic()
                    loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            except BaseException as exc:
                error = exc
            finally:
                loop.call_soon_threadsafe(chunks.put_nowait, _Done(error))

        def finished(_: object) -> None:
            # Later segments may start once the first one's engine work is over; not when
            # its caller has handed the audio on, which a client that does not read could
            # put off forever (and so stall every other connection).
            self.running_jobs -= 1
            self._release(priority, owner, extra)

        self.running_jobs += 1
        future = loop.run_in_executor(self._executor, work)
        future.add_done_callback(finished)
        deadline = loop.time() + timeout_s
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise SynthesisTimeoutError
                try:
                    async with asyncio.timeout(remaining):
                        item = await chunks.get()
                except TimeoutError:
                    raise SynthesisTimeoutError from None
                if isinstance(item, _Done):
                    if item.error is not None:
                        raise item.error
                    clock.finished_s = time.monotonic()
                    return
                yield item
        finally:
            cancel.set()
            if on_cancel is not None and not future.done():
                on_cancel()

    def close(self) -> None:
        if self._regrant is not None:
            self._regrant.cancel()
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.cancel()
        self._waiters.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)
