"""Columnar exports of a channel's day for reconciliation (`payments.service.export_channel_day`).

Reconciliation matches a whole day (up to millions of rows) against a channel's statement; it
must not read payments' tables itself, and a row-by-row ORM read of a million orders costs
seconds. So payments owns the export and hands out CSV bytes with fixed headers
(`ChannelRecords`: `PAY_COLUMNS` and `REFUND_COLUMNS`), which a columnar engine reads in one
call each. On PostgreSQL the rows come from `COPY (SELECT ...) TO STDOUT` (the server writes
the CSV; Python only collects the chunks); elsewhere from a streamed SELECT written by the
csv module.

Rows: one payment row per order paid in [start, end) (`paid_at`: only a confirmed payment has
one) and one refund row per refund that succeeded in it. `at_ms` is the UTC epoch in
milliseconds (truncated). `lookup_records` gives the same tables for given order and refund
ids whatever their state or day (status mismatches and cross-day lines need the rest).

Only what the matching needs is written, and cheaply: no kind column (the table says it), a
payment's id once, the time as a double's arithmetic rather than `extract`'s numeric, and a
refund's way code by a primary-key lookup of its order rather than a join that scans the
channel's orders a second time (measured in docs/reconciliation.md).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.db import Database
from fulema.payments.models import Order, Refund

PAY_COLUMNS = ("ref", "merchant_id", "way_code", "channel_txn_id", "amount_fen", "status",
               "at_ms")
REFUND_COLUMNS = ("ref", "order_id", "merchant_id", "way_code", "channel_txn_id", "amount_fen",
                  "status", "at_ms")


@dataclass(frozen=True)
class ChannelRecords:
    """Our side of a channel, as two headed CSV tables: `pays` (`PAY_COLUMNS`: `ref` is the
    order's id) and `refunds` (`REFUND_COLUMNS`: `ref` is the refund's id). Two tables, not one
    with a kind column, so neither the kind nor a payment's id twice is written a million
    times: each byte left out is one PostgreSQL need not format nor polars read."""

    pays: bytes
    refunds: bytes


# `at_ms`: epoch milliseconds, truncated as `_ms` truncates. `date_part` answers a double
# (PostgreSQL 14+'s `extract` a numeric, much slower to compute and format); it is rounded to
# whole microseconds first (the double holds those exactly enough), then divided in integers.
_PG_PAY = """
SELECT id, merchant_id, way_code, channel_trade_no, COALESCE(payable_amount, amount), status,
       round(date_part('epoch', paid_at) * 1000000)::bigint / 1000
FROM orders WHERE channel = $1 AND paid_at >= $2 AND paid_at < $3"""
# the refund's way code is its order's: one primary-key lookup per refund, not a join that
# scans every order the channel ever had
_PG_REFUND = """
SELECT r.id, r.order_id, r.merchant_id, (SELECT o.way_code FROM orders o WHERE o.id = r.order_id),
       r.channel_refund_no, COALESCE(r.cash_amount, r.amount), r.status,
       round(date_part('epoch', r.succeeded_at) * 1000000)::bigint / 1000
FROM refunds r
WHERE r.channel = $1 AND r.status = 'SUCCESS' AND r.succeeded_at >= $2 AND r.succeeded_at < $3"""


def _naive(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)


def _ms(at: datetime | None) -> str:
    return "" if at is None else str(int(at.timestamp() * 1000))


def _cash(discounted: Any, amount: Any) -> Any:
    """What the channel moved: the payable (or refunded cash) share when marketing took a
    discount, else the amount. The channel's statement holds cash, never the discount."""
    return type_coerce(func.coalesce(discounted, amount), amount.type)


def _pay_query() -> Select[*tuple[Any, ...]]:
    return select(Order.id, Order.merchant_id, Order.way_code, Order.channel_trade_no,
                  _cash(Order.payable_amount, Order.amount), Order.status, Order.paid_at)


def _refund_query() -> Select[*tuple[Any, ...]]:
    way = select(Order.way_code).where(Order.id == Refund.order_id).scalar_subquery()
    return select(Refund.id, Refund.order_id, Refund.merchant_id, way, Refund.channel_refund_no,
                  _cash(Refund.cash_amount, Refund.amount), Refund.status, Refund.succeeded_at)


class _Tables:
    """The two CSV tables being written by the portable (streamed SELECT) path."""

    def __init__(self) -> None:
        self.pays, self.refunds = io.StringIO(), io.StringIO()
        self.pay_rows = csv.writer(self.pays, lineterminator="\n")
        self.refund_rows = csv.writer(self.refunds, lineterminator="\n")
        self.pay_rows.writerow(PAY_COLUMNS)
        self.refund_rows.writerow(REFUND_COLUMNS)

    def records(self) -> ChannelRecords:
        return ChannelRecords(pays=self.pays.getvalue().encode(),
                              refunds=self.refunds.getvalue().encode())


async def _write_rows(session: AsyncSession, out: _Tables, pays: Select[*tuple[Any, ...]] | None,
                      refunds: Select[*tuple[Any, ...]] | None) -> None:
    if pays is not None:
        async for oid, mid, way, txn, amount, status, at in (
                await session.stream(pays)).yield_per(5000):
            out.pay_rows.writerow((oid, mid, way, txn or "", amount.fen, status, _ms(at)))
    if refunds is not None:
        async for rid, oid, mid, way, txn, amount, status, at in (
                await session.stream(refunds)).yield_per(5000):
            out.refund_rows.writerow((rid, oid, mid, way, txn or "", amount.fen, status,
                                      _ms(at)))


async def export_channel_day(db: Database, *, channel: str, start: datetime,
                             end: datetime) -> ChannelRecords:
    """The channel's payments and refunds confirmed in [start, end): what our books say the
    channel's statement for that span must hold."""
    async with db.transaction() as session:
        if db.dialect == "postgresql":
            return await _pg_copy(session, channel, _naive(start), _naive(end))
        out = _Tables()
        pays = _pay_query().where(Order.channel == channel, Order.paid_at >= start,
                                  Order.paid_at < end)
        refunds = _refund_query().where(Refund.channel == channel, Refund.status == "SUCCESS",
                                        Refund.succeeded_at >= start, Refund.succeeded_at < end)
        await _write_rows(session, out, pays, refunds)
        return out.records()


async def _pg_copy(session: AsyncSession, channel: str, start: datetime,
                   end: datetime) -> ChannelRecords:
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    tables: list[bytes] = []
    for sql, columns in ((_PG_PAY, PAY_COLUMNS), (_PG_REFUND, REFUND_COLUMNS)):
        chunks: list[bytes] = [(",".join(columns) + "\n").encode()]
        await driver.copy_from_query(sql, channel, start, end, output=_sink(chunks),
                                     format="csv")
        tables.append(b"".join(chunks))
    return ChannelRecords(pays=tables[0], refunds=tables[1])


def _sink(chunks: list[bytes]) -> Callable[[bytes], Awaitable[None]]:
    async def sink(chunk: bytes) -> None:
        chunks.append(bytes(chunk))  # asyncpg reuses its buffer
    return sink


async def lookup_records(db: Database, *, channel: str, order_ids: Iterable[str],
                         refund_ids: Iterable[str]) -> ChannelRecords:
    """The given orders and refunds of the channel, in any state and on any day; an id we do
    not have is simply absent. `status` is the order's or refund's own status (a PAYING
    order, a FAILED refund), `at_ms` empty when never confirmed."""
    out = _Tables()
    oids, rids = sorted(set(order_ids)), sorted(set(refund_ids))
    async with db.transaction() as session:
        for i in range(0, max(len(oids), len(rids)), 500):
            pays = (_pay_query().where(and_(Order.channel == channel,
                                            Order.id.in_(oids[i:i + 500])))
                    if oids[i:i + 500] else None)
            refunds = (_refund_query().where(and_(Refund.channel == channel,
                                                  Refund.id.in_(rids[i:i + 500])))
                       if rids[i:i + 500] else None)
            await _write_rows(session, out, pays, refunds)
    return out.records()
