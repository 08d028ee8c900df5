"""Rows into typed views: what the services return and the API answers (`schemas.*Out`), and
the event payloads built from them.

One builder per view, so an order looks the same in an API answer, a cashier page and a
`payment.*` event; payloads are the view as JSON (exactly the API's wire form) plus the fields
only consumers need.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Row

from fulema.core import payer_ids
from fulema.payments.models import Notification, NotificationAttempt, Order, Refund
from fulema.payments.schemas import NotificationAttemptOut, NotificationOut, OrderOut, RefundOut

# The columns `order_view` reads: a read that only answers (the merchant's query) selects
# these through Core and hands the row to `order_view` as it is, no ORM entity made.
VIEW_COLUMNS = ("id", "out_trade_no", "merchant_id", "status", "amount", "payable_amount",
                "discounts", "refunded_amount", "channel", "way_code", "subject", "code_url",
                "h5_url", "pay_params", "channel_trade_no", "payer_id", "attach",
                "failure_code", "failure_message", "expire_at", "paid_at", "created_at")


def order_view(order: Order | Row[Any] | SimpleNamespace) -> OrderOut:
    """The order's view, from its entity or from a row of (at least) `VIEW_COLUMNS` (a
    SQLAlchemy row, or `orders_batch`'s)."""
    payable = order.payable_amount if order.payable_amount is not None else order.amount
    return OrderOut(
        order_id=order.id, out_trade_no=order.out_trade_no, merchant_id=order.merchant_id,
        status=order.status, amount=order.amount.fen, payable_amount=payable.fen,
        discount_amount=(order.amount - payable).fen, discounts=order.discounts or [],
        refunded_amount=order.refunded_amount.fen,
        channel=order.channel, way_code=order.way_code, subject=order.subject,
        code_url=order.code_url, h5_url=order.h5_url, pay_params=order.pay_params,
        channel_trade_no=order.channel_trade_no, payer_id=order.payer_id, attach=order.attach,
        failure_code=order.failure_code, failure_message=order.failure_message,
        expire_at=order.expire_at, paid_at=order.paid_at, created_at=order.created_at)


def order_payload(order: Order, view: OrderOut) -> dict[str, Any]:
    """A `payment.*` event's payload: the order's view (the one the caller answers with, so it
    is built once) plus where to notify and for whom. The payer is never in it whole: masked,
    hashed and sealed (`core.payer_ids`), since an outbox row is read by more than its
    consumers."""
    return {**_as_json(view), **payer_ids.event_fields(order.payer_id), "app_id": order.app_id,
            "notify_url": order.notify_url, "store_id": order.store_id}


def refund_view(refund: Refund, out_trade_no: str) -> RefundOut:
    return RefundOut(
        refund_id=refund.id, out_refund_no=refund.out_refund_no, order_id=refund.order_id,
        out_trade_no=out_trade_no, status=refund.status, amount=refund.amount.fen,
        cash_amount=(refund.cash_amount if refund.cash_amount is not None else refund.amount).fen,
        discounts=refund.discounts or [],
        reason=refund.reason, channel_refund_no=refund.channel_refund_no,
        failure_code=refund.failure_code, failure_message=refund.failure_message,
        succeeded_at=refund.succeeded_at, created_at=refund.created_at)


def refund_payload(refund: Refund, order: Order) -> dict[str, Any]:
    """A `refund.*` event's payload: the refund's view plus the order's amounts, channel and
    store (the ledger posts a refund against the channel it went through)."""
    return {**_as_json(refund_view(refund, order.out_trade_no)), "app_id": order.app_id,
            "merchant_id": order.merchant_id, "notify_url": refund.notify_url,
            "channel": refund.channel, "store_id": order.store_id,
            "order_amount": order.amount.fen, "refunded_amount": order.refunded_amount.fen}


def attempt_view(attempt: NotificationAttempt) -> NotificationAttemptOut:
    return NotificationAttemptOut(at=attempt.at, http_status=attempt.http_status,
                                  error=attempt.error, response_excerpt=attempt.response_excerpt,
                                  duration_ms=attempt.duration_ms)


def notification_view(n: Notification, history: list[NotificationAttemptOut]) -> NotificationOut:
    """`attempts` is the count (kept for clients that read it); `delivery_attempts` the log."""
    return NotificationOut(notification_id=n.id, kind=n.kind, url=n.url, status=n.status,
                           attempts=n.attempts, next_attempt_at=n.next_attempt_at,
                           delivered_at=n.delivered_at, delivery_attempts=history)


def _as_json(view: OrderOut | RefundOut) -> dict[str, Any]:
    """The view as JSON values, as the API puts it on the wire: ISO 8601 datetimes, enums as
    their values (a flat view: its nested values are JSON already)."""
    data = view.model_dump()
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
        elif isinstance(value, Enum):
            data[key] = value.value
    return data
