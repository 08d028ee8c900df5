"""The settlement context's public API (other contexts, the routers, the CLI and tests import
only this): the calendar and cycles, the daily run, payouts, statements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from fulema.core.db import Database
from fulema.settlement.bank import BankTransferPayouts as BankTransferPayouts
from fulema.settlement.bank import PayoutAdapter as PayoutAdapter
from fulema.settlement.bank import TransferResult as TransferResult
from fulema.settlement.bank import TransferState as TransferState
from fulema.settlement.batches import RunSummary as RunSummary
from fulema.settlement.batches import closed_trade_date as closed_trade_date
from fulema.settlement.batches import run_due as run_due
from fulema.settlement.batches import run_settlement as run_settlement
from fulema.settlement.calendar import CalendarDayView as CalendarDayView
from fulema.settlement.calendar import list_calendar as list_calendar
from fulema.settlement.calendar import merchant_cycle as merchant_cycle
from fulema.settlement.calendar import set_calendar_day as set_calendar_day
from fulema.settlement.calendar import set_merchant_cycle as set_merchant_cycle
from fulema.settlement.models import SettlementBatch
from fulema.settlement.payouts import PayoutView as PayoutView
from fulema.settlement.payouts import apply_answer as apply_answer
from fulema.settlement.payouts import list_payouts as list_payouts
from fulema.settlement.payouts import process_one as process_one
from fulema.settlement.payouts import process_payouts as process_payouts
from fulema.settlement.statements import batch_statement as batch_statement
from fulema.settlement.statements import day_statement as day_statement


@dataclass(frozen=True)
class BatchView:
    batch_id: str
    merchant_id: str
    settle_date: date
    cycle: str
    status: str
    gross: int
    refunds: int
    fees: int
    discounts: int
    other: int
    net: int
    hold_reason: str | None


async def list_batches(db: Database, *, settle_date: date | None = None,
                       merchant_id: str | None = None, limit: int = 100) -> list[BatchView]:
    """Batches, newest date first."""
    q = select(SettlementBatch).order_by(SettlementBatch.settle_date.desc(),
                                         SettlementBatch.id).limit(limit)
    if settle_date is not None:
        q = q.where(SettlementBatch.settle_date == settle_date)
    if merchant_id is not None:
        q = q.where(SettlementBatch.merchant_id == merchant_id)
    async with db.transaction() as s:
        rows = (await s.scalars(q)).all()
        return [BatchView(batch_id=b.id, merchant_id=b.merchant_id, settle_date=b.settle_date,
                          cycle=b.cycle, status=b.status, gross=b.gross, refunds=b.refunds,
                          fees=b.fees, discounts=b.discounts, other=b.other, net=b.net,
                          hold_reason=b.hold_reason) for b in rows]
