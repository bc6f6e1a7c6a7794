from __future__ import annotations

import asyncio

import pytest

from speakstream.server.outbox import Item, Outbox

pytestmark = pytest.mark.timeout(10)


async def test_ordered_lane_is_bounded_and_put_waits() -> None:
    box = Outbox(ordered_size=2, urgent_size=2)
    await box.put(Item("a"))
    await box.put(Item("b"))
    blocked = asyncio.create_task(box.put(Item("c")))
    await asyncio.sleep(0.02)
    assert not blocked.done() and len(box) == 2
    assert (await box.get()).data == "a"
    await asyncio.wait_for(blocked, 1)
    assert [(await box.get()).data for _ in range(2)] == ["b", "c"]


async def test_urgent_items_jump_the_queue() -> None:
    box = Outbox(ordered_size=4, urgent_size=4)
    await box.put(Item("audio1"))
    await box.put(Item("audio2"))
    await box.put(Item("cancelled"), urgent=True)
    assert [(await box.get()).data for _ in range(3)] == ["cancelled", "audio1", "audio2"]


async def test_drop_stream_removes_queued_items_and_refuses_later_ones() -> None:
    box = Outbox(ordered_size=3, urgent_size=2)
    await box.put(Item(b"x1", stream=1))
    await box.put(Item(b"y1", stream=2))
    await box.put(Item(b"x2", stream=1))
    blocked = asyncio.create_task(box.put(Item(b"y2", stream=2)))
    await asyncio.sleep(0.01)
    await box.drop_stream(1)
    await asyncio.wait_for(blocked, 1)  # dropping freed room
    await box.put(Item(b"x3", stream=1))  # discarded
    assert box.is_dropped(1) and not box.is_dropped(2)
    assert [(await box.get()).data for _ in range(2)] == [b"y1", b"y2"]
    assert len(box) == 0
