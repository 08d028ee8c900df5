"""Reconciling one channel's statement for one day: parse, match, classify, record.

`reconcile` is the one use case behind the CLI, the daily job and the operator API. It reads
our side only through payments' service (`export_channel_day`, `lookup_records`), runs the
columnar matching (`matching`), and writes the run, its totals and its discrepancies in one
transaction after every check passed: a malformed file or a file seen before leaves nothing.
A cross-day line closes the other day's open CROSS_DAY discrepancy for the same record
(action AUTO_CROSS_DAY, audited) instead of opening a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import polars as pl
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.channels.base import ChannelError, ChannelUnavailable
from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.payments import service as payments
from fulema.reconciliation import matching, pipeline
from fulema.reconciliation.domain import Action, DiscrepancyStatus, Result
from fulema.reconciliation.models import Discrepancy, ReconRun, ReconTotal
from fulema.reconciliation.schemas import RunOut
from fulema.reconciliation.statement import digest

CST = timezone(timedelta(hours=8), "Asia/Shanghai")
Progress = Callable[[str, float], None]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The statement day [start, end) in UTC: channels cut their days at Beijing midnight."""
    start = datetime.combine(day, time(0), CST).astimezone(UTC)
    return start, start + timedelta(days=1)


def run_view(run: ReconRun) -> RunOut:
    return RunOut(run_id=run.id, channel=run.channel, day=run.day, sha256=run.sha256,
                  source=run.source, lines=run.lines, ours=run.ours, matched=run.matched,
                  discrepancies=run.discrepancies, auto_resolved=run.auto_resolved,
                  summary=run.summary, created_by=run.created_by, created_at=run.created_at)


async def _seen(session: AsyncSession, channel: str, day: date, sha: str) -> ReconRun | None:
    return (await session.scalars(select(ReconRun).where(
        ReconRun.channel == channel, ReconRun.day == day.isoformat(),
        ReconRun.sha256 == sha))).first()


def _already(run: ReconRun) -> FulemaError:
    return FulemaError(ErrorCode.STATEMENT_ALREADY_IMPORTED,
                       f"this file was imported as run {run.id} ({run.channel} {run.day})",
                       run_id=run.id)


async def download(deps: payments.Deps, *, channel: str, day: date) -> bytes:
    """The channel's statement for `day`, through its adapter, as the platform downloads it."""
    try:
        return await deps.channels.get(channel).download_statement(day)
    except (ChannelUnavailable, ChannelError) as exc:
        raise FulemaError(ErrorCode.CHANNEL_UNAVAILABLE,
                          f"{channel}: statement download failed: {exc}") from exc


async def classify(deps: payments.Deps, *, channel: str, day: date, data: bytes,
                   progress: Progress | None = None) -> tuple[str, pl.DataFrame, int, int]:
    """(sha256, classified rows, statement lines, our records): parse and read our side of
    the day at the same time (`pipeline.load`), then match and classify."""
    tell = progress or (lambda _step, _done: None)
    start, end = day_bounds(day)
    loaded = await pipeline.load(deps.db, channel=channel, data=data, start=start, end=end)
    tell("parsed and read our records", 0.5)
    rows = await pipeline.classify(deps.db, loaded, channel=channel, start=start, end=end)
    tell("matched", 0.8)
    return loaded.statement.sha256, rows, loaded.statement.lines.height, loaded.ours.height


async def reconcile(deps: payments.Deps, *, channel: str, day: date, data: bytes | None = None,
                    actor: str = "scheduler", progress: Progress | None = None) -> RunOut:
    """Reconcile `channel`'s statement of `day`: the given file, or the one downloaded through
    the channel's adapter. STATEMENT_INVALID / STATEMENT_ENCODING for a malformed file,
    STATEMENT_ALREADY_IMPORTED for a file seen before; either way nothing is written."""
    source = "upload" if data is not None else "download"
    if data is None:
        data = await download(deps, channel=channel, day=day)
    tell = progress or (lambda _step, _done: None)
    tell("downloaded", 0.1)
    async with deps.db.transaction() as session:
        seen = await _seen(session, channel, day, digest(data))
    if seen is not None:
        raise _already(seen)
    sha, rows, line_count, our_count = await classify(deps, channel=channel, day=day,
                                                      data=data, progress=progress)
    try:
        async with deps.db.transaction() as session:
            run = await _record(session, channel=channel, day=day, sha=sha, source=source,
                                rows=rows, line_count=line_count, our_count=our_count,
                                actor=actor)
            view = run_view(run)
    except IntegrityError as exc:  # a concurrent import of the same file won
        async with deps.db.transaction() as session:
            seen = await _seen(session, channel, day, sha)
        if seen is None:
            raise
        raise _already(seen) from exc
    tell("recorded", 1.0)
    return view


async def _auto_resolve(session: AsyncSession, *, channel: str, day: str,
                        cross: pl.DataFrame) -> set[str]:
    """Close open CROSS_DAY discrepancies of other days for the refs in `cross`; answer the
    refs closed (their rows count as matched here)."""
    refs = cross["ref"].to_list()
    closed: set[str] = set()
    for i in range(0, len(refs), 500):
        found = (await session.scalars(select(Discrepancy).where(
            Discrepancy.channel == channel, Discrepancy.ref.in_(refs[i:i + 500]),
            Discrepancy.kind == Result.CROSS_DAY.value, Discrepancy.day != day,
            Discrepancy.status != DiscrepancyStatus.RESOLVED.value)
            .with_for_update())).all()
        now = clock.now()
        for d in found:
            d.status, d.action = DiscrepancyStatus.RESOLVED.value, Action.AUTO_CROSS_DAY.value
            d.resolved_by, d.resolved_at, d.updated_at = "reconciliation", now, now
            d.note = f"found in the {day} statement"
            closed.add(d.ref)
            await audit.record(session, actor="reconciliation", action="reconciliation.auto_resolve",
                               target_type="discrepancy", target_id=d.id,
                               detail={"kind": d.kind, "ref": d.ref, "found_on": day})
    return closed


def _summary(rows: pl.DataFrame) -> dict[str, Any]:
    agg = rows.group_by("result").agg(
        count=pl.len(), our_amount=pl.col("our_amount").fill_null(0).sum(),
        channel_amount=pl.col("channel_amount").fill_null(0).sum())
    return {r["result"]: {"count": r["count"], "our_amount": r["our_amount"],
                          "channel_amount": r["channel_amount"]} for r in agg.to_dicts()}


def _fen(value: Any) -> Money | None:
    return None if value is None else Money(int(value))


async def _record(session: AsyncSession, *, channel: str, day: date, sha: str, source: str,
                  rows: pl.DataFrame, line_count: int, our_count: int, actor: str) -> ReconRun:
    iso = day.isoformat()
    cross = rows.filter(pl.col("result") == Result.CROSS_DAY.value)
    closed = await _auto_resolve(session, channel=channel, day=iso, cross=cross) if cross.height \
        else set()
    if closed:
        rows = rows.with_columns(result=pl.when(
            (pl.col("result") == Result.CROSS_DAY.value) & pl.col("ref").is_in(list(closed)))
            .then(pl.lit(Result.MATCHED.value)).otherwise(pl.col("result")))
    found = matching.discrepancies(rows)
    now = clock.now()
    run = ReconRun(id=new_id("rcr"), channel=channel, day=iso, sha256=sha, source=source,
                   lines=line_count, ours=our_count,
                   matched=rows.filter(pl.col("result") == Result.MATCHED.value).height,
                   discrepancies=found.height, auto_resolved=len(closed),
                   summary=_summary(rows), created_by=actor, created_at=now)
    session.add(run)
    await session.flush()
    totals = [dict(t, id=new_id("rct"), run_id=run.id)
              for t in matching.totals(rows).to_dicts()]
    for i in range(0, len(totals), 5000):  # one executemany per chunk (Core, not the ORM)
        await session.execute(insert(ReconTotal), totals[i:i + 5000])
    opened = [dict(
        id=new_id("dis"), run_id=run.id, channel=channel, day=iso, kind=d["result"],
        record_kind=d["kind"], ref=d["ref"], order_id=d["order_id"],
        merchant_id=d["merchant_id"], way_code=d["way_code"], txn_id=d["txn_id"] or None,
        our_amount=_fen(d["our_amount"]), channel_amount=_fen(d["channel_amount"]),
        our_status=d["our_status"], channel_status=d["channel_status"], line=d["line"],
        status=DiscrepancyStatus.OPEN.value, action=None, note=None, resolved_by=None,
        resolved_at=None, created_at=now, updated_at=now) for d in found.to_dicts()]
    for i in range(0, len(opened), 5000):
        await session.execute(insert(Discrepancy), opened[i:i + 5000])
    await audit.record(session, actor=actor, action="reconciliation.import", target_type="recon_run",
                       target_id=run.id, detail={"channel": channel, "day": iso, "sha256": sha,
                                                 "source": source, "lines": line_count,
                                                 "discrepancies": found.height})
    return run
