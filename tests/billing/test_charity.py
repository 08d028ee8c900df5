"""Charity on every database: a donation moves its project's progress exactly once (even when
the event is handed over again), an anonymous donor stays anonymous on the certificate, a
closed project takes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from fulema.billing.domain import progress_bps
from fulema.core.clock import clock
from fulema.core.events import OutboxEvent
from fulema.merchants import service as merchants
from fulema.merchants.domain import MerchantStatus
from tests.merchants.factories import merchant_in
from tests.payments.conftest import Platform

OPS = {"Authorization": "Bearer test-operator"}


async def project(p: Platform, **overrides: Any) -> dict[str, Any]:
    m = await merchant_in(p.db, MerchantStatus.ACTIVE)
    await merchants.create_app_credential(p.db, merchant_id=m.id, operator="t")
    now = clock.now()
    body = {"name": "助学计划", "organisation": "张家港市慈善总会", "merchant_id": m.id,
            "target_amount": 1_000_000, "starts_at": (now - timedelta(days=1)).isoformat(),
            "ends_at": (now + timedelta(days=30)).isoformat(), **overrides}
    resp = await p.http.post("/ops/v1/charity/projects", headers=OPS, json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def donate(p: Platform, project_id: str, **body: Any) -> Any:
    return await p.http.post(f"/charity/v1/projects/{project_id}/donations",
                             json={"amount": 5000, "channel": "bankpay", **body})


async def test_a_donation_moves_the_progress_exactly_once_and_earns_a_certificate(
        platform: Platform) -> None:
    p = platform
    proj = await project(p)
    answer = (await donate(p, proj["project_id"], anonymous=True, donor_name="李四")).json()
    assert answer["donation"]["donor"] == "爱心人士"

    await p.wallet("bankpay", "/scan", {"code_url": answer["order"]["code_url"],
                                        "payer_id": "payer_rich"})
    await p.settle_background()

    after = (await p.http.get(f"/charity/v1/projects/{proj['project_id']}")).json()
    assert (after["raised_amount"], after["donations"]) == (5000, 1)
    assert after["progress_bps"] == progress_bps(5000, 1_000_000) == 50

    # the payment event handed to the consumer again (an operator's replay)
    async with p.db.transaction() as s:
        event_id = await s.scalar(select(OutboxEvent.id).where(
            OutboxEvent.topic == "payment.succeeded"))
    replay = await p.http.post("/ops/v1/events/consumers/billing.donations/replay",
                               headers=OPS, json={"event_id": event_id})
    assert replay.status_code == 200, replay.text
    again = (await p.http.get(f"/charity/v1/projects/{proj['project_id']}")).json()
    assert (again["raised_amount"], again["donations"]) == (5000, 1)

    donation = (await p.http.get(
        f"/charity/v1/donations/{answer['donation']['donation_id']}")).json()
    assert donation["status"] == "PAID"
    assert donation["certificate_no"].startswith("JZ")
    pdf = await p.http.get(f"/charity/v1/donations/{donation['donation_id']}/certificate.pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-1.4")
    assert pdf.content.rstrip().endswith(b"%%EOF")
    utf16 = lambda text: text.encode("utf-16-be").hex().upper().encode()  # noqa: E731
    assert utf16(donation["certificate_no"]) in pdf.content
    assert utf16("爱心人士") in pdf.content
    assert utf16("李四") not in pdf.content
    assert utf16("50.00") in pdf.content


async def test_closed_or_unknown_projects_take_nothing(platform: Platform) -> None:
    p = platform
    proj = await project(p)
    unpaid = (await donate(p, proj["project_id"])).json()
    cert = await p.http.get(
        f"/charity/v1/donations/{unpaid['donation']['donation_id']}/certificate.pdf")
    assert cert.status_code == 404
    assert cert.json()["code"] == "DONATION_NOT_FOUND"

    closed = await p.http.post(f"/ops/v1/charity/projects/{proj['project_id']}/close",
                               headers=OPS)
    assert closed.json()["open_now"] is False
    refused = await donate(p, proj["project_id"])
    assert refused.status_code == 409
    assert refused.json()["code"] == "CHARITY_PROJECT_CLOSED"

    later = await project(p, starts_at=(clock.now() + timedelta(days=1)).isoformat())
    early = await donate(p, later["project_id"])
    assert early.json()["code"] == "CHARITY_PROJECT_CLOSED"
    missing = await donate(p, "chp_nope")
    assert missing.status_code == 404
    assert missing.json()["code"] == "CHARITY_PROJECT_NOT_FOUND"
    zero = await donate(p, later["project_id"], amount=0)
    assert zero.json()["code"] == "VALIDATION_ERROR"
