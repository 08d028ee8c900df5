"""The merchant's switches act: the webhook switch decides whether the payment core calls the
merchant's notify_url, the notice switch whether an in-portal notice is written. Every event
leaves its receipt, so an event redelivered after the merchant subscribes sends nothing.
`settlement.paid` reaches the merchant by SMS, push or notice as it subscribed."""

from __future__ import annotations

from typing import Any

from fulema.core.events import Event
from fulema.core.ids import new_id
from fulema.messaging import fanout, notices, speakers, subscriptions
from tests.messaging.test_sms_push import PHONE, PUSH_TARGET, gateway, payment_event, subscribe
from tests.payments.conftest import Platform

OPS = {"Authorization": "Bearer test-operator"}


async def pay(p: Platform, amount: int) -> dict[str, Any]:
    order = (await p.order(amount=amount)).json()
    await p.wallet("bankpay", "/scan", {"code_url": order["code_url"], "payer_id": "payer_rich"})
    await p.settle_background()
    view = (await p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()
    assert view["status"] == "SUCCESS"
    return view


async def notified(p: Platform, order_id: str) -> list[dict[str, Any]]:
    resp = await p.call("GET", f"/api/v1/orders/{order_id}/notifications")
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["notifications"]
    return data


def received_types(p: Platform) -> list[tuple[str, str]]:
    return [(r["json"]["type"], r["json"]["data"]["order_id"]) for r in p.receiver.received]


async def test_the_webhook_switch_decides_whether_the_notify_url_is_called(
        platform: Platform) -> None:
    p = platform
    await p.settle_background(rounds=1)
    on = await pay(p, 1250)  # the default: on
    assert received_types(p) == [("payment.succeeded", on["order_id"])]

    resp = await subscribe(p, ("payment.succeeded", "webhook", False))
    assert resp.status_code == 200, resp.text
    off = await pay(p, 990)
    assert received_types(p) == [("payment.succeeded", on["order_id"])]  # nothing new
    assert await notified(p, off["order_id"]) == []
    assert len(await notified(p, on["order_id"])) == 1

    # refunds have their own switch: still on, so the refund of the silent order is notified
    refund = await p.call("POST", f"/api/v1/orders/{off['order_id']}/refunds",
                          {"out_refund_no": "RSWITCH0001", "amount": 90})
    assert refund.json()["status"] == "SUCCESS", refund.text
    await p.settle_background()
    assert received_types(p)[-1] == ("refund.succeeded", off["order_id"])

    await subscribe(p, ("refund.succeeded", "webhook", False),
                    ("payment.succeeded", "webhook", True))
    refund = await p.call("POST", f"/api/v1/orders/{off['order_id']}/refunds",
                          {"out_refund_no": "RSWITCH0002", "amount": 100})
    assert refund.json()["status"] == "SUCCESS", refund.text
    again = await pay(p, 500)
    assert received_types(p)[-2:] == [("refund.succeeded", off["order_id"]),
                                      ("payment.succeeded", again["order_id"])]
    assert len(p.receiver.received) == 3


def alert(p: Platform) -> Event:
    return Event(id=new_id("evt"), topic="risk.alert", payload={
        "alert_id": new_id("ral"), "kind": "velocity", "merchant_id": p.merchant_id,
        "severity": "high", "summary": "30 payments in a minute from one payer"})


def settlement_paid(p: Platform, amount: int = 9962) -> Event:
    return Event(id=new_id("evt"), topic="settlement.paid", payload={
        "payout_id": new_id("pay"), "batch_id": new_id("stb"), "merchant_id": p.merchant_id,
        "amount": amount, "account_masked": "6222****0001", "bank_ref": "B1",
        "paid_at": "2026-11-30T08:00:00+00:00"})


async def listed_notices(p: Platform) -> list[str]:
    found = (await p.http.get("/ops/v1/messages/notices", headers=OPS)).json()["data"]
    return [n["summary"] for n in found]


async def test_the_notice_switch_decides_whether_a_notice_is_written(platform: Platform) -> None:
    p = platform
    assert (await subscribe(p, ("risk.alert", "notice", False))).status_code == 200
    silent = alert(p)
    await notices.notice_from_event(p.db, silent)
    assert await listed_notices(p) == []

    await subscribe(p, ("risk.alert", "notice", True))
    await notices.notice_from_event(p.db, silent)  # redelivered after switching on: its receipt
    assert await listed_notices(p) == []
    await notices.notice_from_event(p.db, alert(p))
    assert await listed_notices(p) == ["[high] velocity: 30 payments in a minute from one payer"]

    # an alert that names no merchant is the operators' own: no switch holds it back
    await notices.notice_from_event(p.db, Event(id=new_id("evt"), topic="risk.alert", payload={
        "alert_id": "ral_x", "kind": "breaker", "severity": "low", "summary": "wechat open"}))
    assert len(await listed_notices(p)) == 2


async def test_settlement_paid_is_a_notice_by_default_and_sms_or_push_on_request(
        platform: Platform) -> None:
    p = platform
    paid = settlement_paid(p)
    await notices.notice_from_event(p.db, paid)
    await notices.notice_from_event(p.db, paid)  # delivered twice: one notice
    assert await listed_notices(p) == ["结算款 99.62 元已到账"]
    assert await fanout.fan_out(p.db, [paid]) == 0  # no SMS or push until asked

    resp = await subscribe(p, ("settlement.paid", "sms", True), ("settlement.paid", "push", True),
                           ("settlement.paid", "notice", False),
                           sms_phone=PHONE, push_target=PUSH_TARGET)
    assert resp.status_code == 200, resp.text
    view = {(s["event"], s["channel"]): s["enabled"] for s in resp.json()["subscriptions"]}
    assert view[("settlement.paid", "sms")] is True
    assert view[("settlement.paid", "notice")] is False
    second = settlement_paid(p, amount=100)
    assert await fanout.fan_out(p.db, [second]) == 2
    await notices.notice_from_event(p.db, second)
    assert len(await listed_notices(p)) == 1  # notices switched off
    await fanout.deliver_due(p.db, p.settings, p.app.state.deliverers)
    gw = gateway(p)
    assert [m["content"] for m in gw.sms] == ["【付了码】结算款1.00元已到账。"]
    assert [m["alert"] for m in gw.push] == ["结算款 1.00 元已到账"]


async def test_an_event_that_sent_nothing_sends_nothing_when_redelivered_after_subscribing(
        platform: Platform) -> None:
    p = platform
    event = payment_event(p)
    assert await fanout.fan_out(p.db, [event]) == 0  # no subscription: nothing, but a receipt
    await subscriptions.update_subscriptions(
        p.db, merchant_id=p.merchant_id, sms_phone=PHONE, actor="t",
        switches=[subscriptions.Switch("payment.succeeded", "sms", True)])
    assert await fanout.fan_out(p.db, [event]) == 0  # redelivered: still nothing
    assert await fanout.fan_out(p.db, [event, payment_event(p)]) == 1  # a new one is sent
    await fanout.deliver_due(p.db, p.settings, p.app.state.deliverers)
    assert len(gateway(p).sms) == 1

    # the speaker too: switched off, then on, the old payment is not announced late
    await subscriptions.update_subscriptions(
        p.db, merchant_id=p.merchant_id, actor="t",
        switches=[subscriptions.Switch("payment.succeeded", "speaker", False)])
    quiet = payment_event(p)
    assert await speakers.announce_payment(p.db, quiet, settings=p.settings) == 0
    await subscriptions.update_subscriptions(
        p.db, merchant_id=p.merchant_id, actor="t",
        switches=[subscriptions.Switch("payment.succeeded", "speaker", True)])
    assert await speakers.announce_payment(p.db, quiet, settings=p.settings) == 0
    assert await speakers.announce_payments(p.db, [quiet, payment_event(p)],
                                            settings=p.settings) == 1
    assert len(await speakers.search_messages(p.db, merchant_id=p.merchant_id)) == 1
