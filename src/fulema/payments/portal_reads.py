"""What the merchant portal reads of payments: a merchant's orders (filtered, by cursor), one
order with its event history and refunds, the takings of a span (by channel, store, hour) and
the daily or monthly report.

Every function takes the merchant id and puts it in every WHERE: a merchant can never read
another merchant's rows through these, whatever id a URL carries. Days are calendar days in
Asia/Shanghai (what a shopkeeper means by "today").
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.ledger.domain import SHANGHAI
from fulema.payments.domain import OrderStatus, RefundStatus
from fulema.payments.models import Order, OrderEvent, Refund
from fulema.payments.schemas import OrderOut, RefundOut
from fulema.payments.views import order_view, refund_view

PAID = (OrderStatus.SUCCESS.value, OrderStatus.PARTIALLY_REFUNDED.value,
        OrderStatus.REFUNDED.value)
MAX_SPAN_DAYS = 366


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=SHANGHAI)


def local_day(at: datetime) -> date:
    return at.astimezone(SHANGHAI).date()


@dataclass(frozen=True)
class OrderFilter:
    """Every field optional; amounts in fen; `day_to` inclusive."""

    day_from: date | None = None
    day_to: date | None = None
    status: str | None = None
    channel: str | None = None
    store_id: str | None = None
    min_fen: int | None = None
    max_fen: int | None = None
    out_trade_no: str | None = None


@dataclass(frozen=True)
class OrderPage:
    data: list[OrderOut]
    store_ids: dict[str, str | None]  # order id -> store id
    has_more: bool


async def list_orders(db: Database, *, merchant_id: str, where: OrderFilter, limit: int = 20,
                      starting_after: str | None = None) -> OrderPage:
    """Newest first (ids are time-ordered); `starting_after` is the last id of the page before."""
    if not 1 <= limit <= 100:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "limit: 1..100")
    q = select(Order).where(Order.merchant_id == merchant_id)
    if where.day_from is not None:
        q = q.where(Order.created_at >= day_start(where.day_from))
    if where.day_to is not None:
        q = q.where(Order.created_at < day_start(where.day_to + timedelta(days=1)))
    if where.status:
        q = q.where(Order.status == where.status)
    if where.channel:
        q = q.where(Order.channel == where.channel)
    if where.store_id:
        q = q.where(Order.store_id == where.store_id)
    if where.min_fen is not None:
        q = q.where(Order.amount >= Money(where.min_fen))
    if where.max_fen is not None:
        q = q.where(Order.amount <= Money(where.max_fen))
    if where.out_trade_no:
        q = q.where(Order.out_trade_no == where.out_trade_no)
    if starting_after:
        q = q.where(Order.id < starting_after)
    async with db.transaction() as s:
        rows = list(await s.scalars(q.order_by(Order.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    return OrderPage(data=[order_view(o) for o in page],
                     store_ids={o.id: o.store_id for o in page}, has_more=len(rows) > limit)


@dataclass(frozen=True)
class EventLine:
    kind: str
    from_status: str | None
    to_status: str | None
    at: datetime


@dataclass(frozen=True)
class OrderDetail:
    order: OrderOut
    store_id: str | None
    refundable: int  # fen the merchant may still refund (paid less refunded less pending)
    events: list[EventLine]
    refunds: list[RefundOut]


async def order_detail(db: Database, *, merchant_id: str, order_id: str) -> OrderDetail:
    """ORDER_NOT_FOUND for an unknown order or another merchant's."""
    async with db.transaction() as s:
        order = await s.scalar(select(Order).where(Order.id == order_id,
                                                   Order.merchant_id == merchant_id))
        if order is None:
            raise FulemaError(ErrorCode.ORDER_NOT_FOUND)
        events = await s.scalars(select(OrderEvent).where(OrderEvent.order_id == order.id)
                                 .order_by(OrderEvent.at, OrderEvent.id))
        refunds = await s.scalars(select(Refund).where(Refund.order_id == order.id,
                                                       Refund.merchant_id == merchant_id)
                                  .order_by(Refund.created_at, Refund.id))
        refundable = 0
        if order.status in PAID:
            refundable = (order.amount.fen - order.refunded_amount.fen
                          - order.refund_pending_amount.fen)
        return OrderDetail(order=order_view(order), store_id=order.store_id,
                           refundable=max(0, refundable),
                           events=[EventLine(kind=e.kind, from_status=e.from_status,
                                             to_status=e.to_status, at=e.at) for e in events],
                           refunds=[refund_view(r, order.out_trade_no) for r in refunds])


@dataclass
class Takings:
    """Paid orders of a span: counts and fen, whole and by channel, store and hour (0-23)."""

    count: int = 0
    gross: int = 0
    refunded: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    by_store: dict[str, int] = field(default_factory=dict)
    by_hour: list[int] = field(default_factory=lambda: [0] * 24)


async def _paid_rows(db: Database, merchant_id: str, start: datetime,
                     end: datetime) -> list[Any]:
    q = (select(Order.channel, Order.store_id, Order.amount, Order.paid_at)
         .where(Order.merchant_id == merchant_id, Order.status.in_(PAID),
                Order.paid_at >= start, Order.paid_at < end))
    async with db.transaction() as s:
        return list((await s.execute(q)).all())


async def _refund_rows(db: Database, merchant_id: str, start: datetime,
                       end: datetime) -> list[Any]:
    q = (select(Refund.amount, Refund.succeeded_at)
         .where(Refund.merchant_id == merchant_id, Refund.status == RefundStatus.SUCCESS.value,
                Refund.succeeded_at >= start, Refund.succeeded_at < end))
    async with db.transaction() as s:
        return list((await s.execute(q)).all())


async def takings(db: Database, *, merchant_id: str, day: date) -> Takings:
    start, end = day_start(day), day_start(day + timedelta(days=1))
    out = Takings()
    by_channel: dict[str, int] = defaultdict(int)
    by_store: dict[str, int] = defaultdict(int)
    for channel, store_id, amount, paid_at in await _paid_rows(db, merchant_id, start, end):
        out.count += 1
        out.gross += amount.fen
        by_channel[channel] += amount.fen
        by_store[store_id or ""] += amount.fen
        out.by_hour[paid_at.astimezone(SHANGHAI).hour] += amount.fen
    out.refunded = sum(a.fen for a, _ in await _refund_rows(db, merchant_id, start, end))
    out.by_channel, out.by_store = dict(sorted(by_channel.items())), dict(sorted(by_store.items()))
    return out


@dataclass(frozen=True)
class ReportRow:
    period: str  # "2026-11-26" or "2026-11"
    count: int
    gross: int
    refunded: int

    @property
    def net(self) -> int:
        return self.gross - self.refunded


async def report(db: Database, *, merchant_id: str, day_from: date, day_to: date,
                 monthly: bool = False) -> list[ReportRow]:
    """One row per day (or month) of [day_from, day_to], days without trade included."""
    if day_to < day_from or (day_to - day_from).days >= MAX_SPAN_DAYS:
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          f"dates: from <= to, at most {MAX_SPAN_DAYS} days")
    start, end = day_start(day_from), day_start(day_to + timedelta(days=1))

    def key(d: date) -> str:
        return d.strftime("%Y-%m") if monthly else d.isoformat()

    periods: dict[str, list[int]] = {}
    d = day_from
    while d <= day_to:
        periods.setdefault(key(d), [0, 0, 0])
        d += timedelta(days=1)
    for _c, _s, amount, paid_at in await _paid_rows(db, merchant_id, start, end):
        row = periods[key(local_day(paid_at))]
        row[0] += 1
        row[1] += amount.fen
    for amount, at in await _refund_rows(db, merchant_id, start, end):
        periods[key(local_day(at))][2] += amount.fen
    return [ReportRow(period=p, count=c, gross=g, refunded=r)
            for p, (c, g, r) in periods.items()]


REPORT_HEADER = ("日期 period", "笔数 count", "收款 gross (CNY)", "退款 refunded (CNY)",
                 "净额 net (CNY)")


def report_csv(rows: list[ReportRow]) -> bytes:
    """UTF-8 with a BOM (Excel opens it as UTF-8 only then); amounts in yuan, two decimals."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(REPORT_HEADER)
    for r in rows:
        w.writerow([r.period, r.count, _yuan(r.gross), _yuan(r.refunded), _yuan(r.net)])
    return "\ufeff".encode() + out.getvalue().encode()


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"
