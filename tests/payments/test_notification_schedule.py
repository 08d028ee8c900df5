"""Merchant notifications against an endpoint that never acknowledges, and an app that is gone:
time is moved through the whole ~24 h retry schedule, on every database."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fulema.core.clock import clock
from fulema.merchants import service as merchants
from fulema.ops.worker import run_all_once
from tests.payments.conftest import Platform

# docs/api.md and ARCHITECTURE.md promise this schedule: 15s, 15s, 30s, 3m, 10m, 20m, 30m, 30m,
# 30m, 1h, 3h, 3h, 3h, 6h, 6h.
DOCUMENTED_SCHEDULE = [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600,
                       10800, 10800, 10800, 21600, 21600]


async def paid_order(p: Platform, out_trade_no: str) -> str:
    resp = await p.order(out_trade_no=out_trade_no, amount=880)
    assert resp.status_code == 200, resp.text
    order = resp.json()
    paid = await p.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                               "payer_id": "payer_rich"})
    assert paid.status_code == 200, paid.text
    order_id: str = order["order_id"]
    return order_id


async def notifications_of(p: Platform, order_id: str, **auth: Any) -> list[dict[str, Any]]:
    resp = await p.call("GET", f"/api/v1/orders/{order_id}/notifications", **auth)
    assert resp.status_code == 200, resp.text
    notes: list[dict[str, Any]] = resp.json()["notifications"]
    return notes


def at(attempt: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(attempt["at"])


async def test_a_merchant_that_never_answers_is_tried_on_schedule_for_a_day_then_failed(
        platform: Platform) -> None:
    p = platform
    schedule = p.settings.notify_schedule_seconds
    assert schedule == DOCUMENTED_SCHEDULE
    assert 24 * 3600 <= sum(schedule) <= 25 * 3600
    p.receiver.fail_next = 10**6  # answers HTTP 500 "busy", always
    clock.freeze()
    order_id = await paid_order(p, "NEVERACK01")
    await p.wait_status(order_id, "SUCCESS")
    await p.settle_background(rounds=1)  # the outbox makes the notification; attempt 1 fails
    assert len(p.receiver.received) == 1
    first = (await notifications_of(p, order_id))[0]
    assert first["status"] == "PENDING"
    assert first["attempts"] == 1

    for n, delay in enumerate(schedule, start=2):
        clock.advance(timedelta(seconds=delay - 1))  # one second early: nothing is sent
        await run_all_once(p.app)
        assert len(p.receiver.received) == n - 1, f"attempt {n} came before its {delay}s"
        clock.advance(timedelta(seconds=1))  # due now
        await run_all_once(p.app)
        assert len(p.receiver.received) == n, f"attempt {n} did not come after {delay}s"

    note = (await notifications_of(p, order_id))[0]
    assert note["status"] == "FAILED"
    assert note["next_attempt_at"] is None
    assert note["delivered_at"] is None
    assert note["attempts"] == len(schedule) + 1
    log = note["delivery_attempts"]
    assert len(log) == len(schedule) + 1
    # the status and a reason of our own wording; never the answer's text (issue 8: an
    # address inside the bank must not be read back through the attempt log)
    assert all(a["http_status"] == 500 and a["response_excerpt"] is None for a in log)
    assert all(a["error"] == "not acknowledged (expected HTTP 2xx with body SUCCESS)"
               and a["duration_ms"] >= 0 for a in log)
    for earlier, later, delay in zip(log[:-1], log[1:], schedule, strict=True):
        assert at(later) - at(earlier) >= timedelta(seconds=delay)
    assert at(log[-1]) - at(log[0]) == timedelta(seconds=sum(schedule))
    # every post was the same signed event, never a new one
    assert len({r["json"]["id"] for r in p.receiver.received}) == 1

    clock.advance(timedelta(days=2))  # FAILED is final: no 17th attempt
    await run_all_once(p.app)
    assert len(p.receiver.received) == len(schedule) + 1


async def test_a_resend_after_failure_tries_again_and_the_log_keeps_every_attempt(
        platform: Platform) -> None:
    p = platform
    p.receiver.fail_next = 1
    clock.freeze()
    order_id = await paid_order(p, "RESEND0001")
    await p.wait_status(order_id, "SUCCESS")
    await p.settle_background(rounds=1)
    clock.advance(timedelta(seconds=15))
    await run_all_once(p.app)
    note = (await notifications_of(p, order_id))[0]
    assert note["status"] == "DELIVERED"
    assert [a["http_status"] for a in note["delivery_attempts"]] == [500, 200]
    assert note["delivery_attempts"][1]["response_excerpt"] is None
    assert note["delivery_attempts"][1]["error"] is None

    resent = await p.call("POST", f"/api/v1/orders/{order_id}/notify")
    assert resent.json()["notifications"][0]["status"] == "PENDING"
    await run_all_once(p.app)
    note = (await notifications_of(p, order_id))[0]
    assert note["status"] == "DELIVERED"
    assert note["attempts"] == 3
    assert [a["http_status"] for a in note["delivery_attempts"]] == [500, 200, 200]


async def test_a_notification_for_a_disabled_app_is_logged_and_failed_not_retried_forever(
        platform: Platform) -> None:
    p = platform
    other = await merchants.create_app_credential(p.db, merchant_id=p.merchant_id,
                                                  operator="test")
    as_other = {"app_id": other.app.app_id, "secret": other.secret}
    clock.freeze()
    order_id = await paid_order(p, "DISABLED01")  # placed through app_demo
    await merchants.disable_app(p.db, merchant_id=p.merchant_id, app_id="app_demo",
                                operator="test")
    for _ in range(40):
        view = (await p.call("GET", f"/api/v1/orders/{order_id}", **as_other)).json()
        if view["status"] == "SUCCESS":
            break
        await p.settle_background(rounds=1)
    assert view["status"] == "SUCCESS"
    await p.settle_background(rounds=1)

    note = (await notifications_of(p, order_id, **as_other))[0]
    assert note["status"] == "FAILED"
    assert note["attempts"] == 1
    [attempt] = note["delivery_attempts"]
    assert attempt["http_status"] is None
    assert "APP_NOT_FOUND" in attempt["error"]
    assert "app_demo" in attempt["error"]
    assert "disabled" in attempt["error"]
    assert p.receiver.received == []  # nothing unsigned (or signed with a revoked key) went out

    clock.advance(timedelta(days=2))
    await run_all_once(p.app)
    note = (await notifications_of(p, order_id, **as_other))[0]
    assert note["attempts"] == 1
    assert p.receiver.received == []
