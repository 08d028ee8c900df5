"""SMS and app push: per-merchant subscriptions, the sandbox provider gateway, the delivery log
with retries, exactly once per event, and bad input answered with documented codes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from structlog.testing import capture_logs

from fulema.core.clock import clock
from fulema.core.events import Event
from fulema.core.ids import new_id
from fulema.messaging import fanout, subscriptions
from fulema.messaging.delivery import OutgoingMessage, SmsDeliverer
from fulema.sandbox.notify_gateway import NotifyGateway
from tests.payments.conftest import Platform

OPS = {"Authorization": "Bearer test-operator"}
PHONE = "13812345678"
MASKED = "138****5678"
PUSH_TARGET = "regid_demo_0001"


def gateway(p: Platform) -> NotifyGateway:
    mounted = next(r for r in p.app.routes if getattr(r, "path", "") == "/sandbox/notify")
    gw = mounted.app.state.sandbox  # type: ignore[attr-defined]
    assert isinstance(gw, NotifyGateway)
    return gw


async def subscribe(p: Platform, *switches: tuple[str, str, bool],
                    **recipients: Any) -> httpx.Response:
    return await p.call("PUT", "/api/v1/message-subscriptions", {
        "subscriptions": [{"event": e, "channel": c, "enabled": on} for e, c, on in switches],
        **recipients})


def payment_event(p: Platform, *, amount: int = 1250) -> Event:
    return Event(id=new_id("evt"), topic="payment.succeeded", payload={
        "merchant_id": p.merchant_id, "order_id": new_id("ord"), "amount": amount,
        "channel": "bankpay"})


async def test_an_sms_and_a_push_reach_the_gateway_with_the_text_and_a_masked_phone(
        platform: Platform) -> None:
    p = platform
    resp = await subscribe(p, ("payment.succeeded", "sms", True),
                           ("payment.succeeded", "push", True),
                           sms_phone=PHONE, push_target=PUSH_TARGET)
    assert resp.status_code == 200, resp.text
    assert resp.json()["sms_phone"] == MASKED
    assert PHONE not in resp.text
    async with p.db.transaction() as s:
        stored = await s.scalar(text("SELECT sms_phone FROM message_settings"))
    assert stored.startswith("v1:")
    assert PHONE not in stored

    await p.settle_background(rounds=1)  # consumers registered before the payment (start NOW)
    order = (await p.order(amount=1250)).json()
    with capture_logs() as logs:
        await p.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                            "payer_id": "payer_rich"})
        await p.settle_background()

    gw = gateway(p)
    assert [(m["phone"], m["content"]) for m in gw.sms] == [
        (PHONE, f"【付了码】您的门店收款12.50元，订单{order['order_id']}。")]
    assert [(m["targets"], m["alert"]) for m in gw.push] == [([PUSH_TARGET], "收款 12.50 元")]
    sms_lines = [entry for entry in logs if entry.get("event") == "sms.attempt"]
    assert [(e["phone"], e["ok"]) for e in sms_lines] == [(MASKED, True)]
    assert all(PHONE not in repr(entry) for entry in logs)

    found = (await p.http.get("/ops/v1/messages/deliveries", headers=OPS,
                              params={"merchant_id": p.merchant_id})).json()["data"]
    assert sorted((d["channel"], d["status"], d["recipient"], d["attempts"]) for d in found) == [
        ("push", "SENT", "reg****001", 1), ("sms", "SENT", MASKED, 1)]
    sms_only = (await p.http.get("/ops/v1/messages/deliveries", headers=OPS,
                                 params={"channel": "sms", "status": "SENT"})).json()["data"]
    assert [d["channel"] for d in sms_only] == ["sms"]
    # the speaker still announced it (its default is on)
    feed = (await p.http.get("/messages/feed.json")).json()["items"]
    assert [i["text"] for i in feed] == ["付了码收款十二元五角"]


async def test_a_failing_gateway_is_retried_with_backoff_then_marked_dead(
        platform: Platform) -> None:
    p = platform
    clock.freeze()
    settings = p.settings.model_copy(update={"message_retry_seconds": [10, 20]})
    await subscriptions.update_subscriptions(
        p.db, merchant_id=p.merchant_id, sms_phone=PHONE, actor="test",
        switches=[subscriptions.Switch("payment.succeeded", "sms", True)])
    gw = gateway(p)
    gw.fail_all = True
    await fanout.fan_out(p.db, [payment_event(p)])
    deliverers = p.app.state.deliverers

    assert await fanout.deliver_due(p.db, settings, deliverers) == 0
    [d] = await fanout.search(p.db, merchant_id=p.merchant_id)
    assert (d.status, d.attempts, d.last_error) == ("FAILED", 1, "provider answered HTTP 503")
    assert d.next_attempt_at == clock.now() + timedelta(seconds=10)
    assert await fanout.deliver_due(p.db, settings, deliverers) == 0  # not due yet
    assert gw.requests == 1

    clock.advance(timedelta(seconds=10))
    await fanout.deliver_due(p.db, settings, deliverers)
    [d] = await fanout.search(p.db, merchant_id=p.merchant_id)
    assert (d.status, d.attempts) == ("FAILED", 2)
    assert d.next_attempt_at == clock.now() + timedelta(seconds=20)

    clock.advance(timedelta(seconds=20))
    await fanout.deliver_due(p.db, settings, deliverers)
    [d] = await fanout.search(p.db, merchant_id=p.merchant_id)
    assert (d.status, d.attempts, d.next_attempt_at) == ("DEAD", 3, None)
    clock.advance(timedelta(hours=1))
    await fanout.deliver_due(p.db, settings, deliverers)
    assert gw.requests == 3
    assert gw.sms == []

    dead = (await p.http.get("/ops/v1/messages/deliveries", headers=OPS,
                             params={"status": "DEAD"})).json()["data"]
    assert [x["delivery_id"] for x in dead] == [d.delivery_id]
    gw.fail_all = False
    resent = await p.http.post(f"/ops/v1/messages/deliveries/{d.delivery_id}/resend",
                               headers=OPS)
    assert resent.status_code == 200
    assert resent.json()["status"] == "QUEUED"
    assert await fanout.deliver_due(p.db, settings, deliverers) == 1
    [d] = await fanout.search(p.db, merchant_id=p.merchant_id)
    assert (d.status, d.attempts) == ("SENT", 4)
    assert len(gw.sms) == 1


async def test_a_duplicate_event_sends_once(platform: Platform) -> None:
    p = platform
    await subscriptions.update_subscriptions(
        p.db, merchant_id=p.merchant_id, sms_phone=PHONE, push_target=PUSH_TARGET, actor="t",
        switches=[subscriptions.Switch("payment.succeeded", "sms", True),
                  subscriptions.Switch("payment.succeeded", "push", True)])
    event = payment_event(p)
    assert await fanout.fan_out(p.db, [event, event]) == 2  # twice in one round
    assert await fanout.fan_out(p.db, [event]) == 0  # and again later
    deliverers = p.app.state.deliverers
    # two sending loops at once claim each message once
    sent = await asyncio.gather(fanout.deliver_due(p.db, p.settings, deliverers),
                                fanout.deliver_due(p.db, p.settings, deliverers))
    assert sum(sent) == 2
    await fanout.deliver_due(p.db, p.settings, deliverers)
    gw = gateway(p)
    assert len(gw.sms) == 1
    assert len(gw.push) == 1
    assert len(await fanout.search(p.db, event_id=event.id)) == 2


async def test_a_merchant_who_unsubscribed_gets_nothing(platform: Platform) -> None:
    p = platform
    assert (await subscribe(p, ("payment.succeeded", "sms", True),
                            sms_phone=PHONE)).status_code == 200
    off = await subscribe(p, ("payment.succeeded", "sms", False),
                          ("payment.succeeded", "speaker", False))
    assert off.status_code == 200
    switches = {(s["event"], s["channel"]): s["enabled"] for s in off.json()["subscriptions"]}
    assert switches[("payment.succeeded", "sms")] is False
    assert switches[("payment.succeeded", "speaker")] is False
    assert switches[("payment.succeeded", "webhook")] is True  # untouched default

    await p.settle_background(rounds=1)
    order = (await p.order(amount=990)).json()
    await p.wallet("bankpay", "/scan", {"code_url": order["code_url"], "payer_id": "payer_rich"})
    await p.settle_background()
    assert (await p.call("GET", f"/api/v1/orders/{order['order_id']}")).json()["status"] == \
        "SUCCESS"
    assert gateway(p).sms == []
    assert (await p.http.get("/messages/feed.json")).json()["items"] == []
    assert (await p.http.get("/ops/v1/messages/deliveries", headers=OPS)).json()["data"] == []


@pytest.mark.parametrize(("body", "code"), [
    ({"sms_phone": "1381234567"}, "INVALID_PHONE"),
    ({"sms_phone": "23812345678"}, "INVALID_PHONE"),
    ({"sms_phone": "138-1234-5678"}, "INVALID_PHONE"),
    ({"subscriptions": [{"event": "payment.exploded", "channel": "sms", "enabled": True}]},
     "UNKNOWN_MESSAGE_EVENT"),
    ({"subscriptions": [{"event": "payment.succeeded", "channel": "fax", "enabled": True}]},
     "UNKNOWN_MESSAGE_CHANNEL"),
    ({"subscriptions": [{"event": "payment.succeeded", "channel": "sms", "enabled": True}]},
     "MESSAGE_RECIPIENT_MISSING"),
    ({"subscriptions": [{"event": "refund.succeeded", "channel": "push", "enabled": True}]},
     "MESSAGE_RECIPIENT_MISSING"),
    ({"push_target": "x"}, "VALIDATION_ERROR"),
    ({"subscriptions": [{"event": "payment.succeeded", "channel": "sms"}]}, "VALIDATION_ERROR"),
])
async def test_bad_subscription_input_is_refused_and_changes_nothing(
        platform: Platform, body: dict[str, Any], code: str) -> None:
    p = platform
    before = (await p.call("GET", "/api/v1/message-subscriptions")).json()
    resp = await p.call("PUT", "/api/v1/message-subscriptions", body)
    assert resp.status_code == 400
    assert resp.json()["code"] == code
    assert (await p.call("GET", "/api/v1/message-subscriptions")).json() == before
    ops = await p.http.put(f"/ops/v1/messages/subscriptions/{p.merchant_id}", headers=OPS,
                           json=body)
    assert ops.status_code == 400
    assert ops.json()["code"] == code


async def test_operator_api_codes_and_audit(platform: Platform) -> None:
    p = platform
    missing = await p.http.put("/ops/v1/messages/subscriptions/mch_nope", headers=OPS,
                               json={"sms_phone": PHONE})
    assert missing.json()["code"] == "MERCHANT_NOT_FOUND"
    ok = await p.http.put(f"/ops/v1/messages/subscriptions/{p.merchant_id}", headers=OPS,
                          json={"sms_phone": PHONE, "subscriptions": [
                              {"event": "risk.alert", "channel": "sms", "enabled": True}]})
    assert ok.status_code == 200
    assert ok.json()["updated_by"] == "bootstrap-admin"
    got = (await p.http.get(f"/ops/v1/messages/subscriptions/{p.merchant_id}",
                            headers=OPS)).json()
    assert got["sms_phone"] == MASKED
    async with p.db.transaction() as s:
        detail = await s.scalar(text(
            "SELECT detail FROM audit_records WHERE action = 'message_subscriptions.update'"))
    assert MASKED in str(detail)
    assert PHONE not in str(detail)

    unknown = await p.http.post("/ops/v1/messages/deliveries/mdl_nope/resend", headers=OPS)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "MESSAGE_DELIVERY_NOT_FOUND"
    bad = await p.http.get("/ops/v1/messages/deliveries", headers=OPS,
                           params={"channel": "fax"})
    assert bad.json()["code"] == "VALIDATION_ERROR"
    assert (await p.http.get("/ops/v1/messages/deliveries")).status_code == 401
    assert (await p.http.get("/api/v1/message-subscriptions")).json()["code"] == \
        "SIGNATURE_MISSING"

    # a risk alert that concerns the merchant reaches it by SMS; one without a merchant does not
    alert = Event(id=new_id("evt"), topic="risk.alert", payload={
        "alert_id": "ral_1", "kind": "velocity", "merchant_id": p.merchant_id,
        "severity": "high", "summary": "30 payments in a minute"})
    other = Event(id=new_id("evt"), topic="risk.alert", payload={
        "alert_id": "ral_2", "kind": "velocity", "merchant_id": None, "severity": "high",
        "summary": "platform-wide"})
    assert await fanout.fan_out(p.db, [alert, other]) == 1
    await fanout.deliver_due(p.db, p.settings, p.app.state.deliverers)
    assert [m["content"] for m in gateway(p).sms] == ["【付了码】风险提示（high）：30 payments in a minute"]


async def test_the_gateway_refuses_a_wrong_signature_and_the_guard_refuses_private_hosts(
        platform: Platform) -> None:
    p = platform
    message = OutgoingMessage(delivery_id="mdl_x", channel="sms", recipient=PHONE,
                              recipient_masked=MASKED, text="hello")
    wrong = SmsDeliverer(base_url="http://testserver/sandbox/notify", key_id="fulema-dev-sms",
                         key_secret="not-the-secret", sign_name="付了码", http=p.http,
                         policy=p.settings.outbound_policy())
    outcome = await wrong.send(message)
    assert not outcome.ok
    assert gateway(p).sms == []
    private = SmsDeliverer(base_url="http://10.0.0.7/provider", key_id="k", key_secret="s",
                           sign_name="付了码", http=p.http, policy=p.settings.outbound_policy())
    refused = await private.send(message)
    assert not refused.ok
    assert refused.error == "not sent: private addresses are not accepted"
