"""Payments in the partner (service-provider) form reach each channel's daily statement and
reconcile: a merchant pays once in the direct form (not yet registered), then, ACTIVE at the
channel, under its sub-merchant id, and is refunded in part; the day's statement, made by the
channel's sandbox and downloaded through the adapter, carries every line (naming the
sub-merchant where the channel's format has a column for it), and reconciliation matches each
one and flags nothing. WeChat also hands a service provider one sub-merchant's bill."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone

import pytest

from fulema.channels.unionpay.bill import parse_zm
from fulema.channels.wechat.bill import parse_tradebill
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.reconciliation import service as reconciliation
from tests.onboarding.helpers import (
    RICH,
    onboarding_platform,
    refunded,
    registered,
    status_in_db,
    stored_sub,
)
from tests.payments.conftest import Platform


@pytest.fixture
async def platform(db: Database, settings: Settings) -> AsyncIterator[Platform]:
    async with onboarding_platform(db, settings) as p:
        yield p

CST = timezone(timedelta(hours=8))
DAY = date(2026, 11, 24)
ALL = ["wechat", "alipay", "unionpay", "ecny", "bankpay"]


async def paid(p: Platform, channel: str, amount: int) -> str:
    order = (await p.order(channel=channel, amount=amount)).json()
    assert order["status"] == "PAYING", order
    scanned = await p.wallet(channel, "/scan", {"code_url": order["code_url"],
                                                "payer_id": RICH[channel]})
    assert scanned.status_code == 200, scanned.text
    assert await status_in_db(p, order["order_id"], "SUCCESS") == "SUCCESS"
    return str(order["order_id"])


def wire(channel: str, order_id: str) -> str:
    """The order id as the channel knows it (UnionPay's orderId has no `_`)."""
    return order_id.replace("_", "Z") if channel == "unionpay" else order_id


def named(channel: str, data: bytes) -> dict[str, str]:
    """Each line's order as the statement names it -> the merchant the line names (the
    channels whose format has a column for the sub-merchant)."""
    if channel == "wechat":
        return {r["商户订单号"] + (":" + r["商户退款单号"] if r["商户退款单号"] else ""):
                r["特约商户号"] for r in parse_tradebill(data)}
    if channel == "unionpay":
        return {r.order_id + (":" + r.trade_code if r.trade_code != "S22" else ""): r.mer_id
                for r in parse_zm(data)}
    rows = csv.DictReader(io.StringIO(data.decode()))
    return {r["out_trade_no"] + (":" + r["out_refund_no"] if r["out_refund_no"] else ""):
            r["sub_merchant_id"] for r in rows}


async def day_of_payments(p: Platform, channel: str) -> tuple[str, str, str, str]:
    """A direct-form payment, then the registration, a partner-form payment and its refund:
    (direct order, sub-merchant id, partner order, refund id)."""
    clock.freeze(datetime(2026, 11, 24, 9, 0, tzinfo=CST))
    direct = await paid(p, channel, 700)
    assert await stored_sub(p, direct) is None
    sub = await registered(p, channel)
    partner = await paid(p, channel, 1800)
    assert await stored_sub(p, partner) == sub
    refund = await refunded(p, partner, f"RFST{channel[:3].upper()}1", 300)
    assert refund["status"] == "SUCCESS", refund
    clock.freeze(datetime(2026, 11, 25, 10, 0, tzinfo=CST))
    return direct, sub, partner, str(refund["refund_id"])


@pytest.mark.parametrize("channel", ALL)
async def test_partner_form_payments_and_refunds_reconcile(platform: Platform,
                                                            channel: str) -> None:
    p = platform
    direct, sub, partner, refund_id = await day_of_payments(p, channel)

    adapter = p.app.state.payments.channels.get(channel)
    if channel == "unionpay":  # each line's merId: ours on the direct form's, the sub's
        lines = named(channel, await adapter.download_statement(DAY))
        assert lines == {wire(channel, direct): adapter.primary.up.mer_id,
                         wire(channel, partner): sub, f"{wire(channel, refund_id)}:S31": sub}
    elif channel != "alipay":  # Alipay's trade bill has no column for the smid
        own = "0" if channel == "wechat" else ""  # WeChat's 特约商户号 of a direct-form row
        lines = named(channel, await adapter.download_statement(DAY))
        assert lines == {direct: own, partner: sub, f"{partner}:{refund_id}": sub}

    run = await reconciliation.reconcile(p.app.state.payments, channel=channel, day=DAY,
                                         actor="test")
    page = await reconciliation.list_discrepancies(p.db, run_id=run.run_id)
    assert page.data == []
    assert (run.lines, run.ours, run.matched, run.discrepancies) == (3, 3, 3, 0), run


async def test_wechat_hands_a_service_provider_one_sub_merchants_bill(platform: Platform
                                                                      ) -> None:
    p = platform
    direct, sub, partner, refund_id = await day_of_payments(p, "wechat")
    adapter = p.app.state.payments.channels.get("wechat").primary
    whole = named("wechat", await adapter.download_statement(DAY))
    assert set(whole) == {direct, partner, f"{partner}:{refund_id}"}
    mine = named("wechat", await adapter.download_statement(DAY, sub_merchant_id=sub))
    assert mine == {partner: sub, f"{partner}:{refund_id}": sub}
    status, doc = await adapter.api.call(
        "GET", f"/v3/bill/tradebill?bill_date={DAY:%Y-%m-%d}&sub_mchid=1999999999", None)
    assert (status, doc["code"]) == (400, "PARAM_ERROR")
