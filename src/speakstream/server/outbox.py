"""The bounded outbound queue of one connection.

Two lanes: ``urgent`` (errors about input, ``pong``, ``cancelled``) is served first;
``ordered`` (audio, segment events, ``flushed``, ``done``) keeps its order.

Enqueueing never waits (``put_nowait``): the driver enqueues a session's outputs in the
very order the session produced them, with no await in between, so two producers (job
tasks, the receive loop) can never interleave their items out of order. Backpressure is
applied separately: a producer awaits ``wait_for_room`` before it makes more, so a lane
holds at most its size plus the outputs of one session step (bounded by one segment's
audio). ``drop_stream`` removes a cancelled stream's queued items at once and refuses
later ones.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass

_DROPPED_MEMORY = 1024


@dataclass(frozen=True, slots=True)
class Item:
    data: object  # a ServerMessage, audio that the send loop encodes, or a ready frame
    stream: int | None = None
    close_code: int | None = None  # set: close the socket instead of sending
    close_reason: str = ""


class Outbox:
    def __init__(self, ordered_size: int, urgent_size: int) -> None:
        self._ordered: deque[Item] = deque()
        self._urgent: deque[Item] = deque()
        self.ordered_size = ordered_size
        self.urgent_size = urgent_size
        self._has_items = asyncio.Event()
        self._has_room = asyncio.Event()
        self._dropped: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ordered) + len(self._urgent)

    def put_nowait(self, item: Item, *, urgent: bool = False) -> None:
        if item.stream is not None and item.stream in self._dropped:
            return
        (self._urgent if urgent else self._ordered).append(item)
        self._has_items.set()

    def _full(self, ordered: bool, urgent: bool) -> bool:
        return (ordered and len(self._ordered) >= self.ordered_size) or (
            urgent and len(self._urgent) >= self.urgent_size
        )

    async def wait_for_room(self, *, ordered: bool = True, urgent: bool = False) -> bool:
        """Return once the named lanes are below their size; True if that meant waiting."""
        waited = False
        while self._full(ordered, urgent):
            waited = True
            self._has_room.clear()
            await self._has_room.wait()
        return waited

    def pop_nowait(self) -> Item | None:
        if self._urgent:
            item = self._urgent.popleft()
        elif self._ordered:
            item = self._ordered.popleft()
        else:
            return None
        self._has_room.set()
        return item

    async def get(self) -> Item:
        while True:
            item = self.pop_nowait()
            if item is not None:
                return item
            self._has_items.clear()
            await self._has_items.wait()

    def drop_stream(self, stream: int) -> None:
        """Forget every queued item of ``stream``; later puts of it are discarded."""
        self._dropped[stream] = None
        while len(self._dropped) > _DROPPED_MEMORY:
            self._dropped.popitem(last=False)
        kept = [item for item in self._ordered if item.stream != stream]
        if len(kept) != len(self._ordered):
            self._ordered = deque(kept)
            self._has_room.set()

    def is_dropped(self, stream: int | None) -> bool:
        return stream is not None and stream in self._dropped
