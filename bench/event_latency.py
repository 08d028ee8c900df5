"""`python -m bench.event_latency`: from an event's commit to its consumer's handler.

A cloud speaker must speak within 200 ms of the payment (issue 7). Three ways a consumer
learns of an event are timed in the same run, each against the same database:
- `poll` (the baseline): no wake-up reaches the dispatcher; it finds the event at its next
  poll (FULEMA_EVENTS_POLL_SECONDS, 0.5 s), as a second process on MariaDB would;
- `in-process`: the commit wakes the dispatcher of the same process (`Database.committed`);
- `notify` (PostgreSQL only): a second `Database` (another process's pool) LISTENs and the
  publishing transaction's NOTIFY wakes it.
Prints p50 / p95 / max in milliseconds and each figure's ratio to the poll baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from fulema.core.db import Database
from fulema.core.events import Consumer, Dispatcher, Event, Start, publish

N = 40


async def _measure(publisher: Database, consumer_db: Database, *, wake: bool) -> list[float]:
    arrived: dict[str, float] = {}
    got = asyncio.Event()

    async def speaker(_db: Database, event: Event) -> None:
        arrived[event.id] = time.perf_counter()
        got.set()

    dispatcher = Dispatcher(consumer_db, [Consumer(f"bench.speaker{int(wake)}{id(consumer_db)}",
                                                   speaker, start=Start.NOW)],
                            poll_seconds=0.5)
    await dispatcher.register()
    if not wake:  # the baseline: commits of this process do not reach the dispatcher
        publisher.committed = type(publisher.committed)()
        publisher.notify_other_processes = False
    task = asyncio.create_task(dispatcher.run_forever())
    await asyncio.sleep(0.3)
    latencies = []
    try:
        for n in range(N):
            got.clear()
            async with publisher.transaction() as s:
                event_id = publish(s, "payment.succeeded", {"n": n})
            committed = time.perf_counter()
            await asyncio.wait_for(got.wait(), timeout=5)
            latencies.append((arrived[event_id] - committed) * 1000)
            await asyncio.sleep(0.05 + (n % 7) * 0.03)  # payments do not arrive on the poll's beat
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return latencies


def _line(name: str, xs: list[float], base: float | None) -> str:
    xs = sorted(xs)
    p50, p95 = statistics.median(xs), xs[int(len(xs) * 0.95) - 1]
    ratio = f"  p50 / poll p50 = {p50 / base:.3f}" if base else ""
    return f"{name:<12} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms   max {xs[-1]:8.2f} ms{ratio}"


async def run(pg_url: str | None) -> None:
    import fulema.app  # noqa: F401 - every table

    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"}
        if pg_url:
            urls["postgres"] = pg_url
        for name, url in urls.items():
            db = Database(url)
            await db.drop_all()
            await db.create_all()
            poll = await _measure(Database(url), Database(url), wake=False)
            base = statistics.median(poll)
            print(f"-- {name}: {N} events, commit -> handler")
            print(_line("poll", poll, None))
            print(_line("in-process", await _measure(db, db, wake=True), base))
            if name == "postgres":
                other = Database(url)
                print(_line("notify", await _measure(db, other, wake=True), base))
                await other.dispose()
            await db.dispose()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.event_latency")
    p.add_argument("--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test",
                   help="PostgreSQL URL for the NOTIFY figure; '' to skip")
    a = p.parse_args()
    asyncio.run(run(a.pg or None))


if __name__ == "__main__":
    main()
