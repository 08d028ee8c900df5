"""`core.signal.Signal`, the in-process wake-up every background loop waits on: a loop that is
cancelled (a process shutting down) must end even when a wake-up arrives in the same moment;
before, `asyncio.wait_for` swallowed that cancellation on Python 3.11 and the loop waited on,
so the shutdown never finished."""

from __future__ import annotations

import asyncio

from fulema.core.signal import Signal


async def test_a_waiting_loop_cancelled_as_it_is_woken_ends() -> None:
    signal = Signal()
    seen = [signal.generation]

    async def loop() -> None:
        while True:
            await signal.wait(seen[0], 3600.0)
            seen[0] = signal.generation

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    signal.notify()  # a commit wakes it ...
    task.cancel()  # ... in the same turn as the shutdown cancels it
    done, _ = await asyncio.wait([task], timeout=5)
    assert done == {task}
    assert task.cancelled()


async def test_a_wait_returns_on_a_wake_up_or_after_its_time() -> None:
    signal = Signal()
    since = signal.generation
    waiter = asyncio.create_task(signal.wait(since, 3600.0))
    await asyncio.sleep(0.01)
    signal.notify()
    await asyncio.wait_for(waiter, 5)
    await asyncio.wait_for(signal.wait(since, 3600.0), 5)  # already moved: at once
    await asyncio.wait_for(signal.wait(signal.generation, 0.01), 5)  # nothing: its time
