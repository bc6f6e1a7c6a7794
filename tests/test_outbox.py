from __future__ import annotations

import asyncio

import pytest

from speakstream.server.outbox import Item, Outbox

pytestmark = pytest.mark.timeout(10)


async def settle() -> None:
    """Let every task that can run, run: nothing else could make a waiter proceed."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_room_is_waited_for_separately_and_put_never_blocks() -> None:
    box = Outbox(ordered_size=2, urgent_size=2)
    box.put_nowait(Item("a"))
    box.put_nowait(Item("b"))
    box.put_nowait(Item("c"))  # one step's burst may pass the size; the producer then waits
    waiting = asyncio.create_task(box.wait_for_room())
    await settle()
    assert not waiting.done() and len(box) == 3
    assert (await box.get()).data == "a"
    assert not waiting.done()  # still 2 queued: full
    assert (await box.get()).data == "b"
    await asyncio.wait_for(waiting, 1)
    assert (await box.get()).data == "c"


async def test_urgent_room_does_not_depend_on_ordered_backlog() -> None:
    box = Outbox(ordered_size=1, urgent_size=2)
    box.put_nowait(Item("audio1"))
    box.put_nowait(Item("audio2"))
    await asyncio.wait_for(box.wait_for_room(ordered=False, urgent=True), 1)


async def test_urgent_items_jump_the_queue() -> None:
    box = Outbox(ordered_size=4, urgent_size=4)
    box.put_nowait(Item("audio1"))
    box.put_nowait(Item("audio2"))
    box.put_nowait(Item("cancelled"), urgent=True)
    assert [(await box.get()).data for _ in range(3)] == ["cancelled", "audio1", "audio2"]


async def test_get_waits_for_an_item() -> None:
    box = Outbox(ordered_size=1, urgent_size=1)
    getter = asyncio.create_task(box.get())
    await settle()
    assert not getter.done()
    box.put_nowait(Item("x"))
    assert (await asyncio.wait_for(getter, 1)).data == "x"


async def test_drop_stream_removes_queued_items_frees_room_and_refuses_later_ones() -> None:
    box = Outbox(ordered_size=3, urgent_size=2)
    box.put_nowait(Item(b"x1", stream=1))
    box.put_nowait(Item(b"y1", stream=2))
    box.put_nowait(Item(b"x2", stream=1))
    waiting = asyncio.create_task(box.wait_for_room())
    await settle()
    box.drop_stream(1)
    await asyncio.wait_for(waiting, 1)  # dropping freed room
    box.put_nowait(Item(b"x3", stream=1))  # discarded
    box.put_nowait(Item(b"y2", stream=2))
    assert box.is_dropped(1) and not box.is_dropped(2)
    assert [(await box.get()).data for _ in range(2)] == [b"y1", b"y2"]
    assert len(box) == 0
