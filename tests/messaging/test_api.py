"""A real payment through the platform announces on the demo store's speaker: seen on the live
feed (no broker) and in the operator's delivery log; resend and notices over HTTP."""

from __future__ import annotations

from fulema.core.events import Event
from fulema.core.ids import new_id
from fulema.messaging import notices
from tests.payments.conftest import Platform

OPS = {"Authorization": "Bearer test-operator"}


async def test_a_paid_order_is_announced_once_on_the_feed_and_in_the_log(
        platform: Platform) -> None:
    p = platform
    await p.settle_background(rounds=1)  # consumers registered before the payment (start NOW)
    order = (await p.order(amount=1250)).json()
    await p.wallet("bankpay", "/scan", {"code_url": order["code_url"], "payer_id": "payer_rich"})
    await p.settle_background()

    feed = (await p.http.get("/messages/feed.json")).json()["items"]
    assert [(i["text"], i["amount_yuan"], i["speaker_id"]) for i in feed] == [
        ("付了码收款十二元五角", "12.50", "spk_demo")]
    page = await p.http.get("/messages/feed")
    assert page.status_code == 200
    assert "付了码收款十二元五角" in page.text
    assert "http://" not in page.text
    assert "https://" not in page.text

    log = await p.http.get("/ops/v1/messages/speaker", headers=OPS,
                           params={"order_id": order["order_id"]})
    [entry] = log.json()["data"]
    assert entry["status"] == "LOGGED"
    assert entry["amount"] == 1250

    resent = await p.http.post(f"/ops/v1/messages/speaker/{entry['message_id']}/resend",
                               headers=OPS)
    assert resent.status_code == 200
    assert resent.json()["status"] == "PENDING"
    await p.settle_background(rounds=1)
    assert len((await p.http.get("/messages/feed.json")).json()["items"]) == 2

    missing = await p.http.post("/ops/v1/messages/speaker/spm_nope/resend", headers=OPS)
    assert missing.status_code == 404
    assert missing.json()["code"] == "MESSAGE_NOT_FOUND"
    assert (await p.http.get("/ops/v1/messages/speaker")).status_code == 401


async def test_a_risk_alert_becomes_one_notice_until_read(platform: Platform) -> None:
    p = platform
    event = Event(id=new_id("evt"), topic="risk.alert", payload={
        "alert_id": "ral_1", "kind": "velocity", "merchant_id": p.merchant_id,
        "severity": "high", "summary": "30 payments in a minute from one payer"})
    await notices.notice_from_event(p.db, event)
    await notices.notice_from_event(p.db, event)  # delivered again

    [n] = (await p.http.get("/ops/v1/messages/notices", headers=OPS)).json()["data"]
    assert n["summary"] == "[high] velocity: 30 payments in a minute from one payer"
    read = await p.http.post(f"/ops/v1/messages/notices/{n['id']}/read", headers=OPS)
    assert read.json()["read_by"] == "bootstrap-admin"
    assert (await p.http.get("/ops/v1/messages/notices", headers=OPS)).json()["data"] == []


async def test_the_feed_does_not_exist_outside_development(platform: Platform) -> None:
    p = platform
    p.app.state.settings = p.settings.model_copy(update={"environment": "production"})
    resp = await p.http.get("/messages/feed")
    assert resp.status_code == 404
