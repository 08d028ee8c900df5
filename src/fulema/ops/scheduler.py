"""One scheduler with a job table: every job runs in one process at a time, by lease.

Jobs are declared once (`ops/worker.py: declared_jobs`) and run by every process that runs
background work (the embedded server, each `fulema worker`). Each job has a row in
`scheduled_jobs`; a process runs a round only while it holds the row's lease, taken with a
conditional UPDATE (`... WHERE lease_until IS NULL OR lease_until < now`, then the row count),
never SKIP LOCKED, which TiDB does not honour. So two workers never run a job at once, and
when one dies the other takes over once its lease runs out.

- **Frequent jobs** (a period under a minute: notifications, order polls) keep their lease
  across rounds and renew it at half-life, writing their counters then: a few writes a minute,
  not two per round.
- **Slow jobs** (hourly, daily) take the lease for one round, record the run in `job_runs`
  (who, when, how long, the error), and set the next due time. A run missed while no process
  was up is caught up once at start (a job is due when `next_due_at` has passed), not once per
  missed period.
- `fulema jobs list` shows the table; `fulema jobs run NAME` runs one round now (a manual
  trigger, recorded as such), taking the lease like any other round.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core.clock import clock
from fulema.core.db import Base, Database, UTCDateTime
from fulema.core.events.consumers import short_error
from fulema.core.ids import new_id
from fulema.core.signal import Signal

log = structlog.get_logger(__name__)
OWNER = f"{os.uname().nodename[:24]}-{os.getpid()}-{secrets.token_hex(3)}"
FREQUENT_BELOW = 60.0  # seconds: jobs run more often than this keep their lease
FREQUENT_LEASE = 20.0
SLOW_LEASE = 900.0  # a slow round must finish within this, or another process may start one
BUSY_BATCH = 20


class ScheduledJob(Base):
    __tablename__ = "scheduled_jobs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_seconds: Mapped[float] = mapped_column()
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    runs: Mapped[int] = mapped_column(BigInteger, default=0)
    failures: Mapped[int] = mapped_column(BigInteger, default=0)


class JobRun(Base):
    """One round of a slow job (or a manual one): the record an auditor asks for."""

    __tablename__ = "job_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(16))  # schedule | catch-up | manual
    owner: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ok: Mapped[bool] = mapped_column(Boolean)
    done: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_job_runs_job_started", "job", "started_at"),)


@dataclass(frozen=True)
class Job:
    """`run` returns how much it did (an int: a full batch runs again at once) or anything."""

    name: str
    period: float
    run: Callable[[], Awaitable[object]]
    wake: Signal | None = None

    @property
    def frequent(self) -> bool:
        return self.period < FREQUENT_BELOW


async def ensure_rows(db: Database, jobs: list[Job]) -> None:
    async with db.transaction() as s:
        known = set((await s.execute(select(ScheduledJob.name))).scalars())
    for job in jobs:
        if job.name in known:
            continue
        try:
            async with db.transaction() as s:
                await s.execute(insert(ScheduledJob).values(
                    name=job.name, period_seconds=job.period, runs=0, failures=0,
                    next_due_at=clock.now()))
        except IntegrityError:  # another process registered it first
            pass


async def claim(db: Database, job: Job, *, lease: float, only_if_due: bool,
                owner: str = OWNER) -> bool:
    now = clock.now()
    cond = [ScheduledJob.name == job.name,
            (ScheduledJob.lease_until.is_(None)) | (ScheduledJob.lease_until < now)
            | (ScheduledJob.owner == owner)]
    if only_if_due:
        cond.append((ScheduledJob.next_due_at.is_(None)) | (ScheduledJob.next_due_at <= now))
    async with db.transaction() as s:
        result = await s.execute(update(ScheduledJob).where(*cond).values(
            owner=owner, lease_until=now + timedelta(seconds=lease), last_started_at=now))
    return bool(getattr(result, "rowcount", 0) == 1)


async def _finish(db: Database, job: Job, *, ok_rounds: int, failed_rounds: int,
                  error: str | None, release: bool, owner: str = OWNER) -> None:
    now = clock.now()
    values: dict[str, Any] = {"runs": ScheduledJob.runs + ok_rounds + failed_rounds,
                              "failures": ScheduledJob.failures + failed_rounds}
    if ok_rounds:
        values["last_ok_at"] = now
    if error is not None:
        values.update(last_error=error, last_error_at=now)
    if release:
        values.update(owner=None, lease_until=None,
                      next_due_at=now + timedelta(seconds=job.period))
    async with db.transaction() as s:
        await s.execute(update(ScheduledJob).where(ScheduledJob.name == job.name,
                                                   ScheduledJob.owner == owner).values(**values))


async def run_round(db: Database, job: Job, *, trigger: str,
                    owner: str = OWNER) -> tuple[bool, object]:
    """One round of a slow job under its lease (taken by the caller), recorded in job_runs."""
    started = clock.now()
    try:
        done = await job.run()
        ok, error = True, None
    except Exception as exc:  # a round's failure is recorded, the scheduler goes on
        done, ok, error = None, False, short_error(exc)
        log.error("job.failed", job=job.name, error=error)
    async with db.transaction() as s:
        s.add(JobRun(id=new_id("run"), job=job.name, trigger=trigger, owner=owner,
                     started_at=started, finished_at=clock.now(), ok=ok,
                     done=done if isinstance(done, int) else None, error=error))
    await _finish(db, job, ok_rounds=int(ok), failed_rounds=int(not ok), error=error,
                  release=True, owner=owner)
    return ok, done


async def run_slow(db: Database, job: Job, on_round: Callable[[str, bool], None], *,
                   owner: str = OWNER) -> None:
    first = True
    while True:
        if await claim(db, job, lease=SLOW_LEASE, only_if_due=True, owner=owner):
            ok, _ = await run_round(db, job, trigger="catch-up" if first else "schedule",
                                    owner=owner)
            on_round(job.name, ok)
        first = False
        await asyncio.sleep(min(job.period, 60.0))  # look again: due time or a dead holder


async def run_frequent(db: Database, job: Job, on_round: Callable[[str, bool], None], *,
                       owner: str = OWNER, lease: float = FREQUENT_LEASE) -> None:
    """Holds the lease across rounds, renewing at half-life and writing counters then."""
    held_until = 0.0
    ok_rounds = failed_rounds = 0
    error: str | None = None
    while True:
        now = time.monotonic()
        if now > held_until - lease / 2:
            if held_until and (ok_rounds or failed_rounds):
                await _finish(db, job, ok_rounds=ok_rounds, failed_rounds=failed_rounds,
                              error=error, release=False, owner=owner)
                ok_rounds = failed_rounds = 0
                error = None
            if await claim(db, job, lease=lease, only_if_due=False, owner=owner):
                held_until = time.monotonic() + lease
            else:
                held_until = 0.0
                await asyncio.sleep(lease / 4)  # another process holds it
                continue
        seen = job.wake.generation if job.wake is not None else 0
        busy = False
        try:
            done = await job.run()
            busy = isinstance(done, int) and done >= BUSY_BATCH
            ok_rounds += 1
            on_round(job.name, True)
        except Exception as exc:  # as in run_round
            failed_rounds += 1
            error = short_error(exc)
            log.error("job.failed", job=job.name, error=error)
            on_round(job.name, False)
        if busy:
            await asyncio.sleep(0)
        elif job.wake is None:
            await asyncio.sleep(job.period)
        else:
            await job.wake.wait(seen, job.period)


async def release_held(db: Database, *, owner: str = OWNER) -> int:
    """Give up every lease this process holds (its shutdown): another process takes the jobs
    at its next look instead of after the lease runs out (up to 20 s for a frequent job, 15
    minutes for a slow one stopped mid-round, which is then due again and runs whole).
    Answers how many rows were released."""
    async with db.transaction() as s:
        result = await s.execute(update(ScheduledJob).where(ScheduledJob.owner == owner)
                                 .values(owner=None, lease_until=None))
    return int(getattr(result, "rowcount", 0) or 0)


async def run_now(db: Database, job: Job, *, owner: str = OWNER) -> tuple[bool, object]:
    """The manual trigger: one round now, under the lease like any other."""
    await ensure_rows(db, [job])
    if not await claim(db, job, lease=SLOW_LEASE, only_if_due=False, owner=owner):
        raise RuntimeError(f"job {job.name} is running in another process; try again later")
    return await run_round(db, job, trigger="manual", owner=owner)


async def table(db: Database) -> list[ScheduledJob]:
    async with db.transaction() as s:
        return list((await s.execute(select(ScheduledJob).order_by(ScheduledJob.name)))
                    .scalars())


async def recent_runs(db: Database, name: str, *, limit: int = 20) -> list[JobRun]:
    async with db.transaction() as s:
        return list((await s.execute(select(JobRun).where(JobRun.job == name)
                                     .order_by(JobRun.started_at.desc()).limit(limit)))
                    .scalars())
