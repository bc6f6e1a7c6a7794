"""Rate limits as plain arithmetic on a clock passed in (no tasks, no sleeps).

* ``TokenBucket(rate_per_s, burst)``: ``take(now_s)`` is True while the bucket has a
  token (it refills at ``rate_per_s`` up to ``burst``). A connection takes one per client
  message; the first message over the limit gets ``rate_limited`` and the socket closes
  with 1008 (``server.connection``).
* ``SlidingCounter(limit, window_s)``: ``add(amount, now_s)`` is False once the amounts
  added in the last ``window_s`` would pass ``limit`` (a per-key character budget).
* ``KeyCounts``: connections open per key, for ``max_connections_per_key``.
"""

from __future__ import annotations

from collections import deque


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: int, now_s: float) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tokens = float(burst)
        self._last_s = now_s

    def take(self, now_s: float) -> bool:
        elapsed_s = max(0.0, now_s - self._last_s)
        self._last_s = now_s
        self.tokens = min(float(self.burst), self.tokens + elapsed_s * self.rate_per_s)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SlidingCounter:
    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._events: deque[tuple[float, int]] = deque()
        self.total = 0

    def add(self, amount: int, now_s: float) -> bool:
        """Count ``amount`` unless it would pass the limit; True if it was counted."""
        while self._events and now_s - self._events[0][0] >= self.window_s:
            self.total -= self._events.popleft()[1]
        if self.total + amount > self.limit:
            return False
        self._events.append((now_s, amount))
        self.total += amount
        return True


class KeyCounts:
    """How many connections each key holds open."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def get(self, key_id: str) -> int:
        return self._open.get(key_id, 0)

    def acquire(self, key_id: str, limit: int) -> bool:
        if self._open.get(key_id, 0) >= limit:
            return False
        self._open[key_id] = self._open.get(key_id, 0) + 1
        return True

    def release(self, key_id: str) -> None:
        left = self._open.get(key_id, 0) - 1
        if left > 0:
            self._open[key_id] = left
        else:
            self._open.pop(key_id, None)
