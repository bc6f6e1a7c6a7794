"""The engine's backlog, server-wide: how long a new job waits before a worker takes it.

Every session registers the jobs it hands to the engine pool (``add``: when it must start
at the latest and its forecast engine time), says when one starts (``start``) and when it
is over (``remove``: finished, failed or cancelled). The pool runs the earliest deadline
first, so a job that must start by ``start_by_s`` waits for the work that is running and
for the queued work due no later than it, shared by the workers (``wait_ms``). A context's
own jobs are left out: its listener model counts them already, in order.

Sans-I/O and single-threaded (the event loop's); times are the sessions' monotonic clock.
The clock of the running jobs' remainders is the last time an event was recorded, which
every job's start and end keeps fresh under load.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(slots=True)
class _Work:
    owner: Hashable
    start_by_s: float
    forecast_ms: float
    started_s: float | None = None


class Backlog:
    """Engine work handed to the pool and not over yet, with its deadlines."""

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._work: dict[Hashable, _Work] = {}
        self._now_s = 0.0

    def __len__(self) -> int:
        return len(self._work)

    def add(
        self, key: Hashable, owner: Hashable, start_by_s: float, forecast_ms: float, now_s: float
    ) -> None:
        """A job (``key``, unique server-wide) of ``owner`` (a context) was handed to the
        pool; it must start by ``start_by_s`` and should take ``forecast_ms``."""
        self._now_s = max(self._now_s, now_s)
        self._work[key] = _Work(owner, start_by_s, max(0.0, forecast_ms))

    def start(self, key: Hashable, now_s: float) -> bool:
        """A worker took job ``key``; whether another job was running then."""
        self._now_s = max(self._now_s, now_s)
        shared = any(w.started_s is not None for k, w in self._work.items() if k != key)
        work = self._work.get(key)
        if work is not None and work.started_s is None:
            work.started_s = now_s
        return shared

    def remove(self, key: Hashable, now_s: float | None = None) -> None:
        if now_s is not None:
            self._now_s = max(self._now_s, now_s)
        self._work.pop(key, None)

    def wait_ms(self, start_by_s: float, owner: Hashable = None) -> float:
        """Forecast wait for a worker of a job of ``owner`` that must start by
        ``start_by_s``: what is left of the running jobs, and the queued ones due no
        later, spread over the workers (``owner``'s own jobs not counted)."""
        ahead_ms = 0.0
        for work in self._work.values():
            if work.owner == owner and owner is not None:
                continue
            if work.started_s is not None:
                elapsed_ms = 1000.0 * (self._now_s - work.started_s)
                ahead_ms += max(0.0, work.forecast_ms - elapsed_ms)
            elif work.start_by_s <= start_by_s:
                ahead_ms += work.forecast_ms
        return ahead_ms / self.workers

    def others(self, owner: Hashable) -> bool:
        """Whether anyone but ``owner`` has work in the pool."""
        return any(work.owner != owner for work in self._work.values())
