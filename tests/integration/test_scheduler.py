"""The job table on every database: what an operator checks is that two worker processes never
run one job at the same time, that a job a dead worker held is taken over once its lease runs
out, that a daily job missed while nothing ran is caught up once (not once per missed day),
that every slow or manual run is recorded with its error, and that `fulema jobs` shows it."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.ops import scheduler
from fulema.ops.scheduler import Job, JobRun, ScheduledJob


def counting(name: str, period: float, calls: list[str], *, fail: bool = False) -> Job:
    async def run() -> int:
        calls.append(name)
        if fail:
            raise RuntimeError("the biller's host refused the connection")
        return 1

    return Job(name, period, run)


async def test_only_one_process_holds_a_job_and_a_dead_holders_lease_runs_out(
        db: Database) -> None:
    job = counting("settle.daily", 86400, [])
    await scheduler.ensure_rows(db, [job])
    assert await scheduler.claim(db, job, lease=60, only_if_due=False, owner="worker-a")
    assert not await scheduler.claim(db, job, lease=60, only_if_due=False, owner="worker-b")
    clock.freeze(clock.now() + timedelta(seconds=61))  # worker-a died holding it
    try:
        assert await scheduler.claim(db, job, lease=60, only_if_due=False, owner="worker-b")
    finally:
        clock.reset()


async def test_concurrent_claims_let_exactly_one_process_in(db: Database) -> None:
    job = counting("reconcile.daily", 86400, [])
    await scheduler.ensure_rows(db, [job])
    wins = await asyncio.gather(*(scheduler.claim(db, job, lease=60, only_if_due=False,
                                                  owner=f"worker-{i}") for i in range(8)))
    assert sum(wins) == 1


async def test_a_missed_daily_job_is_caught_up_once_and_recorded(db: Database) -> None:
    calls: list[str] = []
    job = counting("settle.daily", 86400, calls)
    await scheduler.ensure_rows(db, [job])
    async with db.transaction() as s:  # it last ran three days ago
        await s.execute(update(ScheduledJob).where(ScheduledJob.name == job.name)
                        .values(next_due_at=clock.now() - timedelta(days=2)))
    loop = asyncio.create_task(scheduler.run_slow(db, job, lambda *_: None, owner="worker-a"))
    for _ in range(100):
        if calls:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    assert calls == ["settle.daily"]  # once, not three times
    async with db.transaction() as s:
        runs = list((await s.execute(select(JobRun))).scalars())
        row = await s.get(ScheduledJob, job.name)
    assert [(r.trigger, r.ok, r.owner) for r in runs] == [("catch-up", True, "worker-a")]
    assert row is not None
    assert row.owner is None  # released
    assert row.next_due_at is not None
    assert row.next_due_at > clock.now() + timedelta(hours=23)


async def test_a_job_not_yet_due_does_not_run(db: Database) -> None:
    calls: list[str] = []
    job = counting("settle.daily", 86400, calls)
    await scheduler.ensure_rows(db, [job])
    async with db.transaction() as s:
        await s.execute(update(ScheduledJob).where(ScheduledJob.name == job.name)
                        .values(next_due_at=clock.now() + timedelta(hours=5)))
    assert not await scheduler.claim(db, job, lease=60, only_if_due=True, owner="worker-a")


async def test_a_failing_manual_run_records_its_error(db: Database) -> None:
    job = counting("billing.writeoff", 300, [], fail=True)
    ok, _ = await scheduler.run_now(db, job, owner="ops-cli")
    assert not ok
    async with db.transaction() as s:
        (run,) = (await s.execute(select(JobRun))).scalars()
        row = await s.get(ScheduledJob, job.name)
    assert run.trigger == "manual"
    assert run.error is not None
    assert "refused the connection" in run.error
    assert row is not None
    assert row.failures == 1
    assert row.last_error == run.error


async def test_a_manual_run_waits_for_the_holder(db: Database) -> None:
    job = counting("reconcile.daily", 86400, [])
    await scheduler.ensure_rows(db, [job])
    assert await scheduler.claim(db, job, lease=60, only_if_due=False, owner="worker-a")
    with pytest.raises(RuntimeError, match="another process"):
        await scheduler.run_now(db, job, owner="ops-cli")


async def test_two_workers_running_a_frequent_job_never_overlap(db: Database) -> None:
    running = 0
    overlapped = False
    rounds: list[str] = []

    def worker_job(owner: str) -> Job:
        async def run() -> int:
            nonlocal running, overlapped
            running += 1
            overlapped = overlapped or running > 1
            rounds.append(owner)
            await asyncio.sleep(0.01)
            running -= 1
            return 0

        return Job("notify", 0.02, run)

    await scheduler.ensure_rows(db, [worker_job("a")])
    loops = [asyncio.create_task(scheduler.run_frequent(db, worker_job(o), lambda *_: None,
                                                        owner=o, lease=30))
             for o in ("worker-a", "worker-b")]
    await asyncio.sleep(1.0)
    for loop in loops:
        loop.cancel()
    for loop in loops:
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    assert not overlapped
    assert len(rounds) > 5
    assert len(set(rounds)) == 1  # the holder kept it; the other never ran a round
