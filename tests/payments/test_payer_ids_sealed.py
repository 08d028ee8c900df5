"""The payer is never whole in the clear outside the order: after a payment and a refund, no
outbox row and no stored notification body holds the payer's id; the events carry it masked,
hashed (risk counts payers by the hash) and sealed (points and coupons open it); the merchant
that owns the order still receives its payer's id in the notification, as the channels do."""

from __future__ import annotations

from sqlalchemy import select

from fulema.core import payer_ids, vault
from fulema.core.events.outbox import OutboxEvent
from fulema.payments.models import Notification
from fulema.risk.models import RiskTxn
from tests.payments.conftest import Platform, platform

__all__ = ["platform"]

PAYER = "payer_rich"
OPS = {"Authorization": "Bearer test-operator"}


async def test_no_full_payer_id_in_any_outbox_row_or_notification_body(
        platform: Platform) -> None:
    p = platform
    created = await p.order(amount=6000, payer_id=PAYER)
    assert created.status_code == 200, created.text
    order = created.json()
    paid = await p.wallet("bankpay", "/scan", {"code_url": order["code_url"], "payer_id": PAYER})
    assert paid.status_code == 200, paid.text
    await p.wait_status(order["order_id"], "SUCCESS")
    refund = await p.call("POST", f"/api/v1/orders/{order['order_id']}/refunds",
                          {"out_refund_no": "REFUND-1", "amount": 1000})
    assert refund.status_code == 200, refund.text
    await p.settle_background()

    async with p.db.transaction() as s:
        events = list(await s.scalars(select(OutboxEvent)))
        bodies = [n.body for n in await s.scalars(select(Notification))]
        risk = await s.get(RiskTxn, order["order_id"])
    assert {e.topic for e in events} >= {"payment.succeeded", "refund.succeeded"}
    assert bodies  # the payment's notification was staged
    for text in [str(e.payload) for e in events] + bodies:
        assert PAYER not in text
    paid_event = next(e.payload for e in events if e.topic == "payment.succeeded")
    assert paid_event["payer_id"] == "****"  # 10 characters or fewer: masked whole
    assert paid_event["payer_hash"] == vault.blind_index("payer_id", PAYER)
    assert vault.is_sealed(paid_event["payer_id_sealed"])
    assert payer_ids.payer_of(paid_event) == PAYER

    # the consumers still know the payer: risk by the hash, points by the id itself
    assert risk is not None
    assert risk.payer_id == paid_event["payer_hash"]
    statement = (await p.http.get(f"/ops/v1/points/accounts/bankpay:{PAYER}",
                                  headers=OPS)).json()
    assert statement["balance"] == 60 - 10  # 60.00 yuan earned 60; the 10.00 refund took 10

    # the merchant that owns the order gets its payer's id on the wire (signed as sent)
    note = next(r for r in p.receiver.received if r["json"]["type"] == "payment.succeeded")
    assert note["json"]["data"]["payer_id"] == PAYER
    assert "payer_hash" not in note["json"]["data"]
    assert "payer_id_sealed" not in note["json"]["data"]


async def test_an_order_without_a_payer_has_none_in_its_events(platform: Platform) -> None:
    created = await platform.order()
    order = created.json()
    await platform.call("POST", f"/api/v1/orders/{order['order_id']}/close")
    async with platform.db.transaction() as s:
        events = [e.payload for e in await s.scalars(select(OutboxEvent))]
    closed = next(e for e in events if e.get("order_id") == order["order_id"])
    assert (closed["payer_id"], closed["payer_hash"], closed["payer_id_sealed"]) == (
        None, None, None)
    assert payer_ids.payer_of(closed) is None
