"""The daily settlement run: one batch per merchant with money due, once per date.

For each merchant with open items on its payable account, one transaction takes the items due
by the run date (its cycle for ordinary trades, T+0 for same-day ones), sums them into the
batch's figures and either settles the net (a ledger entry to settlement in transit and a
payout to send) or gives the items back open: a hold (frozen merchant, risk hold) or a net that
is not positive (carried forward to the next run). The batch's unique (merchant, date) makes a
second run of the same date, or two at once, a no-op.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import date, timedelta

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.ids import new_id
from fulema.ledger import service as ledger
from fulema.merchants import service as merchants
from fulema.settlement import domain
from fulema.settlement.calendar import cycles_of, load_calendar
from fulema.settlement.domain import SAME_DAY, BatchFigures, BatchStatus, Calendar, Cycle
from fulema.settlement.models import Payout, SettlementBatch, SettlementRun

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunSummary:
    settle_date: date
    already_done: bool
    batches: int
    settled: int
    held: int
    carried: int
    net_settled: int


def mask(account: str) -> str:
    return f"****{account[-4:]}" if len(account) > 4 else "****"


async def run_settlement(db: Database, settings: Settings, *, settle_date: date) -> RunSummary:
    """Settle `settle_date`; a date already settled is a no-op that says so."""
    done = False
    with contextlib.suppress(IntegrityError):  # a run of the same date started at once
        async with db.transaction() as s:
            run = await s.get(SettlementRun, settle_date)
            done = run is not None and run.status == "DONE"
            if run is None:
                s.add(SettlementRun(settle_date=settle_date, status="RUNNING", batches=0,
                                    started_at=clock.now()))
    if done:
        return await _summary(db, settle_date, already_done=True)
    cal = await load_calendar(db)
    same_day_through = domain.due_through(settle_date, SAME_DAY, cal)
    merchant_ids = await ledger.merchants_with_open_items(db)
    cycles = await cycles_of(db, merchant_ids)
    for merchant_id in merchant_ids:
        cycle = Cycle.parse(cycles.get(merchant_id, settings.settlement_default_cycle))
        try:
            await settle_merchant(db, merchant_id=merchant_id, settle_date=settle_date,
                                  cycle=cycle, cal=cal, same_day_through=same_day_through)
        except IntegrityError:  # another run settled this merchant for this date first
            log.info("settlement.batch_exists", merchant_id=merchant_id, date=str(settle_date))
    summary = await _summary(db, settle_date, already_done=False)
    async with db.transaction() as s:
        run = await s.get(SettlementRun, settle_date, with_for_update=True)
        assert run is not None
        run.status, run.batches, run.finished_at = "DONE", summary.batches, clock.now()
    log.info("settlement.run_done", date=str(settle_date), batches=summary.batches,
             settled=summary.settled, net=summary.net_settled)
    return summary


async def settle_merchant(db: Database, *, merchant_id: str, settle_date: date, cycle: Cycle,
                          cal: Calendar, same_day_through: date | None) -> BatchStatus | None:
    """One merchant's batch for the date, in one transaction; None if it had one already."""
    detail = await merchants.get_merchant(db, merchant_id=merchant_id)
    m = detail.merchant
    hold = domain.hold_reason(merchant_status=m.status,
                              settlement_hold_reason=m.settlement_hold_reason)
    through = domain.due_through(settle_date, cycle, cal)
    async with db.transaction() as s:
        exists = await s.scalar(select(SettlementBatch.id).where(
            SettlementBatch.merchant_id == merchant_id, SettlementBatch.settle_date == settle_date))
        if exists is not None:
            return None
        batch_id = new_id("stb")
        items = await ledger.clear_open_items(s, merchant_id=merchant_id, batch_id=batch_id,
                                              through=through, same_day_through=same_day_through)
        if not items.by_kind:
            return None  # nothing due for this merchant today: no batch
        figures = BatchFigures.from_items(items.by_kind)
        status = domain.batch_status(figures, hold_reason=hold)
        s.add(SettlementBatch(
            id=batch_id, merchant_id=merchant_id, settle_date=settle_date, cycle=str(cycle),
            status=status.value, through_date=through, same_day_through=same_day_through,
            gross=figures.gross, refunds=figures.refunds, fees=figures.fees,
            discounts=figures.discounts, other=figures.other, net=figures.net,
            hold_reason=hold, created_at=clock.now()))
        await s.flush()  # the unique (merchant, date) refuses a second batch here
        if status is not BatchStatus.SETTLED:
            await ledger.release_items(s, merchant_id=merchant_id, batch_id=batch_id)
            return status
        await ledger.post_entry(s, source_key=f"settlement:{batch_id}", kind="settlement",
                                business_ref=batch_id, merchant_id=merchant_id,
                                trade_date=settle_date, cleared_by=batch_id,
                                lines=ledger.settlement_lines(merchant_id, figures.net))
        now = clock.now()
        s.add(Payout(id=new_id("po"), batch_id=batch_id, merchant_id=merchant_id,
                     amount=figures.net, status=domain.PayoutStatus.PENDING.value, attempt=1,
                     request_id="", account_masked=mask(m.settlement_account), bank_ref=None,
                     last_error=None, next_try_at=now, claimed_until=None, created_at=now,
                     updated_at=now))
        return status


async def _summary(db: Database, settle_date: date, *, already_done: bool) -> RunSummary:
    async with db.transaction() as s:
        rows = (await s.execute(
            select(SettlementBatch.status, func.count(), func.sum(SettlementBatch.net))
            .where(SettlementBatch.settle_date == settle_date)
            .group_by(SettlementBatch.status))).all()
    count = {str(st): int(n) for st, n, _ in rows}
    net = {str(st): int(v or 0) for st, _, v in rows}
    return RunSummary(settle_date=settle_date, already_done=already_done,
                      batches=sum(count.values()), settled=count.get("SETTLED", 0),
                      held=count.get("HELD", 0), carried=count.get("CARRIED", 0),
                      net_settled=net.get("SETTLED", 0))


def closed_trade_date(settings: Settings) -> date:
    """The latest trade date whose cut-off has passed (what the daily job settles)."""
    today = ledger.business_date(clock.now(), settings.settlement_cutoff)
    return today - timedelta(days=1)


async def run_due(db: Database, settings: Settings, *, max_days: int = 7) -> int:
    """The scheduled job: settle every closed date not settled yet (at most `max_days` back,
    so a worker that was down catches up). Returns the batches made."""
    target = closed_trade_date(settings)
    async with db.transaction() as s:
        last = await s.scalar(select(func.max(SettlementRun.settle_date)).where(
            SettlementRun.status == "DONE"))
    start = target if last is None else max(last + timedelta(days=1),
                                            target - timedelta(days=max_days - 1))
    made, day = 0, start
    while day <= target:
        made += (await run_settlement(db, settings, settle_date=day)).batches
        day += timedelta(days=1)
    return made
