"""Reports of a run, summed from its totals: by channel (the run as a whole, per result), by
merchant, by scenario (way code and record kind: 业务类型) and by transaction (every
discrepancy of the run, with its line in the statement)."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import func, select

from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.reconciliation.domain import Result
from fulema.reconciliation.models import ReconRun, ReconTotal
from fulema.reconciliation.runs import run_view
from fulema.reconciliation.schemas import ReportOut, ReportRow, RunOut

By = Literal["channel", "merchant", "scenario"]


async def get_run(db: Database, *, run_id: str) -> RunOut:
    async with db.transaction() as session:
        run = await session.get(ReconRun, run_id)
        if run is None:
            raise FulemaError(ErrorCode.RECON_RUN_NOT_FOUND)
        return run_view(run)


async def list_runs(db: Database, *, channel: str | None = None, day: str | None = None,
                    limit: int = 50) -> list[RunOut]:
    q = select(ReconRun).order_by(ReconRun.created_at.desc(), ReconRun.id.desc()).limit(limit)
    if channel:
        q = q.where(ReconRun.channel == channel)
    if day:
        q = q.where(ReconRun.day == day)
    async with db.transaction() as session:
        return [run_view(r) for r in (await session.scalars(q)).all()]


async def report(db: Database, *, run_id: str, by: By) -> ReportOut:
    await get_run(db, run_id=run_id)
    t = ReconTotal
    key = {"channel": None, "merchant": t.merchant_id,
           "scenario": func.coalesce(t.way_code, "") + "/" + t.kind}[by]
    cols = [t.result, func.sum(t.count), func.sum(t.our_amount), func.sum(t.channel_amount)]
    q = select(*([key] if key is not None else []), *cols).where(t.run_id == run_id)
    q = q.group_by(*([key] if key is not None else []), t.result)
    async with db.transaction() as session:
        rows = (await session.execute(q)).all()
    out: list[ReportRow] = []
    for row in rows:
        values: tuple[Any, ...] = tuple(row)
        k, rest = (values[0], values[1:]) if key is not None else (None, values)
        out.append(ReportRow(key=k, result=Result(rest[0]), count=int(rest[1]),
                             our_amount=int(rest[2]), channel_amount=int(rest[3])))
    out.sort(key=lambda r: (r.key or "", r.result.value))
    return ReportOut(run_id=run_id, by=by, rows=out)
