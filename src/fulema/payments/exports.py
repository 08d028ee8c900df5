"""Columnar exports of a channel's day for reconciliation (`payments.service.export_channel_day`).

Reconciliation matches a whole day (up to millions of rows) against a channel's statement; it
must not read payments' tables itself, and a row-by-row ORM read of a million orders costs
seconds. So payments owns the export and hands out CSV bytes with a fixed header
(`EXPORT_COLUMNS`), which a columnar engine reads in one call. On PostgreSQL the rows come
from `COPY (SELECT ...) TO STDOUT` (the server writes the CSV; Python only collects the
chunks); elsewhere from a streamed SELECT written by the csv module.

Rows: one `PAY` row per order paid in [start, end) (`paid_at`: only a confirmed payment has
one) and one `REFUND` row per refund that succeeded in it. `at_ms` is the UTC epoch in
milliseconds. `lookup_records` gives the same row shape for given order and refund ids
whatever their state or day (status mismatches and cross-day lines need the rest).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.db import Database
from fulema.payments.models import Order, Refund

EXPORT_COLUMNS = ("kind", "ref", "order_id", "merchant_id", "way_code", "channel_txn_id",
                  "amount_fen", "status", "at_ms")

_PG_PAY = """
SELECT 'PAY', id, id, merchant_id, way_code, channel_trade_no, COALESCE(payable_amount, amount),
       status,
       (extract(epoch from paid_at) * 1000)::bigint
FROM orders WHERE channel = $1 AND paid_at >= $2 AND paid_at < $3"""
_PG_REFUND = """
SELECT 'REFUND', r.id, r.order_id, r.merchant_id, o.way_code, r.channel_refund_no,
       COALESCE(r.cash_amount, r.amount), r.status, (extract(epoch from r.succeeded_at) * 1000)::bigint
FROM refunds r JOIN orders o ON o.id = r.order_id
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
    return (select(Refund.id, Refund.order_id, Refund.merchant_id, Order.way_code,
                   Refund.channel_refund_no, _cash(Refund.cash_amount, Refund.amount),
                   Refund.status, Refund.succeeded_at)
            .join(Order, Order.id == Refund.order_id))


async def _write_rows(session: AsyncSession, writer: Any, pays: Select[*tuple[Any, ...]] | None,
                      refunds: Select[*tuple[Any, ...]] | None) -> None:
    if pays is not None:
        async for oid, mid, way, txn, amount, status, at in (
                await session.stream(pays)).yield_per(5000):
            writer.writerow(("PAY", oid, oid, mid, way, txn or "", amount.fen, status, _ms(at)))
    if refunds is not None:
        async for rid, oid, mid, way, txn, amount, status, at in (
                await session.stream(refunds)).yield_per(5000):
            writer.writerow(("REFUND", rid, oid, mid, way, txn or "", amount.fen, status,
                             _ms(at)))


async def export_channel_day(db: Database, *, channel: str, start: datetime,
                             end: datetime) -> bytes:
    """CSV (header `EXPORT_COLUMNS`) of the channel's payments and refunds confirmed in
    [start, end): what our books say the channel's statement for that span must hold."""
    async with db.transaction() as session:
        if db.dialect == "postgresql":
            return await _pg_copy(session, channel, _naive(start), _naive(end))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        pays = _pay_query().where(Order.channel == channel, Order.paid_at >= start,
                                  Order.paid_at < end)
        refunds = _refund_query().where(Refund.channel == channel, Refund.status == "SUCCESS",
                                        Refund.succeeded_at >= start, Refund.succeeded_at < end)
        await _write_rows(session, writer, pays, refunds)
        return out.getvalue().encode()


async def _pg_copy(session: AsyncSession, channel: str, start: datetime, end: datetime) -> bytes:
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    chunks: list[bytes] = [(",".join(EXPORT_COLUMNS) + "\n").encode()]

    async def sink(chunk: bytes) -> None:
        chunks.append(bytes(chunk))

    for sql in (_PG_PAY, _PG_REFUND):
        await driver.copy_from_query(sql, channel, start, end, output=sink, format="csv")
    return b"".join(chunks)


async def lookup_records(db: Database, *, channel: str, order_ids: Iterable[str],
                         refund_ids: Iterable[str]) -> bytes:
    """CSV (header `EXPORT_COLUMNS`) of the given orders and refunds of the channel, in any
    state and on any day; an id we do not have is simply absent. `status` is the order's or
    refund's own status (a PAYING order, a FAILED refund), `at_ms` empty when never confirmed."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    oids, rids = sorted(set(order_ids)), sorted(set(refund_ids))
    async with db.transaction() as session:
        for i in range(0, max(len(oids), len(rids)), 500):
            pays = (_pay_query().where(and_(Order.channel == channel,
                                            Order.id.in_(oids[i:i + 500])))
                    if oids[i:i + 500] else None)
            refunds = (_refund_query().where(and_(Refund.channel == channel,
                                                  Refund.id.in_(rids[i:i + 500])))
                       if rids[i:i + 500] else None)
            await _write_rows(session, writer, pays, refunds)
    return out.getvalue().encode()
