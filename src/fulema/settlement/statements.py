"""Merchant statements as CSV: a trade day's transactions, or what a settlement batch took.

The shape follows the channels' own bill downloads (WeChat's tradebill): a header row, one row
per transaction, then a summary header and a summary row. Amounts in yuan with two decimals
(a file for people and spreadsheets: the edge where yuan strings belong). Every figure is read
from the ledger, so the statement always agrees with what is settled.
"""

from __future__ import annotations

import csv
import io
from datetime import date

from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.ledger import service as ledger
from fulema.settlement.domain import BatchFigures
from fulema.settlement.models import SettlementBatch

HEADER = ["trade_date", "type", "reference", "merchant_no", "channel", "gross", "refund",
          "merchant_discount", "fee", "other", "net"]
SUMMARY = ["transactions", "gross", "refund", "merchant_discount", "fee", "other", "net"]


def _yuan(fen: int) -> str:
    return Money(fen).to_yuan()


def render(lines: list[ledger.StatementLine]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADER)
    total = BatchFigures(0, 0, 0, 0, 0, 0)
    count = 0
    for line in lines:
        f = BatchFigures.from_items(line.by_kind)
        total = BatchFigures(total.gross + f.gross, total.refunds + f.refunds,
                             total.fees + f.fees, total.discounts + f.discounts,
                             total.other + f.other, total.net + f.net)
        count += line.kind in {"payment", "refund"}
        w.writerow([line.trade_date.isoformat(), line.kind, line.business_ref,
                    line.external_ref or "", line.channel or "", _yuan(f.gross),
                    _yuan(f.refunds), _yuan(f.discounts), _yuan(f.fees), _yuan(f.other),
                    _yuan(f.net)])
    w.writerow(SUMMARY)
    w.writerow([count, _yuan(total.gross), _yuan(total.refunds), _yuan(total.discounts),
                _yuan(total.fees), _yuan(total.other), _yuan(total.net)])
    return out.getvalue()


async def day_statement(db: Database, *, merchant_id: str, day: date) -> str:
    """The merchant's payments and refunds booked on trade date `day` (settlements excluded:
    they are in the batch statements)."""
    lines = await ledger.statement_lines(db, merchant_id=merchant_id, trade_date=day)
    return render([x for x in lines if x.kind not in {"settlement"}])


async def batch_statement(db: Database, *, batch_id: str, merchant_id: str | None = None) -> str:
    """What a settlement batch took (its settlement line excluded: it is the batch itself)."""
    async with db.transaction() as s:
        batch = await s.get(SettlementBatch, batch_id)
    if batch is None or (merchant_id is not None and batch.merchant_id != merchant_id):
        raise FulemaError(ErrorCode.SETTLEMENT_BATCH_NOT_FOUND)
    lines = await ledger.statement_lines(db, merchant_id=batch.merchant_id, batch_id=batch_id)
    return render([x for x in lines if x.kind != "settlement"])
