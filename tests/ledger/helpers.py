"""Driving the ledger through its real consumer: events published to the outbox as payments
and refunds publish them, then the dispatcher with the ledger's consumer. Discounts are
simulated through the event payloads (marketing's fields, read with their defaults), since
the marketing context has not landed on this branch."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import Dispatcher, publish
from fulema.core.ids import new_id
from fulema.ledger import jobs as ledger_jobs
from fulema.merchants import service as merchants
from fulema.merchants.domain import MerchantStatus
from tests.merchants.factories import OPERATOR, merchant_in


async def active_merchant(db: Database, *, wechat_bps: int | None = None) -> str:
    m = await merchant_in(db, MerchantStatus.ACTIVE)
    if wechat_bps is not None:
        await merchants.set_fee_rate(db, merchant_id=m.id, channel="wechat", bps=wechat_bps,
                                     operator=OPERATOR)
    return m.id


def payment_payload(*, merchant_id: str, amount: int, channel: str, paid_at: datetime,
                    platform_discount: int = 0, merchant_discount: int = 0,
                    order_id: str | None = None, **extra: Any) -> dict[str, Any]:
    discounts = []
    if platform_discount:
        discounts.append({"kind": "campaign", "funder": "platform", "amount": platform_discount,
                          "ref": "cmp_1"})
    if merchant_discount:
        discounts.append({"kind": "coupon", "funder": "merchant", "amount": merchant_discount,
                          "ref": "cpn_1"})
    payload: dict[str, Any] = {
        "order_id": order_id or new_id("ord"), "out_trade_no": new_id("T")[:20],
        "merchant_id": merchant_id, "status": "SUCCESS", "amount": amount,
        "refunded_amount": 0, "channel": channel, "way_code": "QR_DYNAMIC", "subject": "x",
        "paid_at": paid_at.isoformat(), "created_at": paid_at.isoformat(), "app_id": "app",
        "notify_url": None, "store_id": None,
        "fee_waived": channel == "bankpay", "same_day_settlement": channel == "bankpay"}
    if discounts:
        payload["payable_amount"] = amount - platform_discount - merchant_discount
        payload["discount_amount"] = platform_discount + merchant_discount
        payload["discounts"] = discounts
    payload.update(extra)
    return payload


def refund_payload(*, payment: dict[str, Any], amount: int, cash: int, platform: int,
                   merchant: int, at: datetime) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "refund_id": new_id("rf"), "out_refund_no": new_id("R")[:20],
        "order_id": payment["order_id"], "out_trade_no": payment["out_trade_no"],
        "status": "SUCCESS", "amount": amount, "succeeded_at": at.isoformat(),
        "merchant_id": payment["merchant_id"], "channel": payment["channel"],
        "order_amount": payment["amount"], "refunded_amount": amount}
    if "discounts" in payment:
        payload["cash_amount"] = cash
        payload["discounts"] = [d for d in (
            {"kind": "campaign", "funder": "platform", "amount": platform, "ref": "cmp_1"},
            {"kind": "coupon", "funder": "merchant", "amount": merchant, "ref": "cpn_1"})
            if d["amount"]]
    return payload


async def publish_events(db: Database, events: list[tuple[str, dict[str, Any]]]) -> None:
    async with db.transaction() as s:
        for topic, payload in events:
            publish(s, topic, payload)


async def post_all(db: Database, settings: Settings) -> None:
    await Dispatcher(db, ledger_jobs.consumers(settings)).drain()
