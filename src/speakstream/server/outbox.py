"""The bounded outbound queue of one connection.

Two lanes: ``urgent`` (errors about input, ``pong``, ``cancelled``) is served first;
``ordered`` (audio, segment events, ``flushed``, ``done``) keeps its order. Both are
bounded: a full lane makes ``put`` wait, which is the backpressure that reaches the
producers (synthesis results, then the receive loop, then the client's TCP window).
``drop_stream`` removes a cancelled stream's queued items at once and refuses later ones.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass

_DROPPED_MEMORY = 1024


@dataclass(frozen=True, slots=True)
class Item:
    data: str | bytes
    stream: int | None = None
    close_code: int | None = None  # set: close the socket instead of sending
    close_reason: str = ""


class Outbox:
    def __init__(self, ordered_size: int, urgent_size: int) -> None:
        self._ordered: deque[Item] = deque()
        self._urgent: deque[Item] = deque()
        self._ordered_size = ordered_size
        self._urgent_size = urgent_size
        self._changed = asyncio.Condition()
        self._dropped: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ordered) + len(self._urgent)

    async def put(self, item: Item, *, urgent: bool = False) -> None:
        lane, size = (
            (self._urgent, self._urgent_size) if urgent else (self._ordered, self._ordered_size)
        )
        async with self._changed:
            await self._changed.wait_for(lambda: len(lane) < size)
            if item.stream is not None and item.stream in self._dropped:
                return
            lane.append(item)
            self._changed.notify_all()

    async def get(self) -> Item:
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._urgent or self._ordered))
            item = self._urgent.popleft() if self._urgent else self._ordered.popleft()
            self._changed.notify_all()
            return item

    async def drop_stream(self, stream: int) -> None:
        """Forget every queued item of ``stream``; later puts of it are discarded."""
        async with self._changed:
            self._dropped[stream] = None
            while len(self._dropped) > _DROPPED_MEMORY:
                self._dropped.popitem(last=False)
            # In place: a waiting ``put`` holds a reference to this very deque.
            kept = [item for item in self._ordered if item.stream != stream]
            self._ordered.clear()
            self._ordered.extend(kept)
            self._changed.notify_all()

    def is_dropped(self, stream: int | None) -> bool:
        return stream is not None and stream in self._dropped
