"""What the bank's monitoring sees, through the real app: a payment moves the payment counters
(counted once, by the `ops.metrics` event consumer), requests are counted by endpoint class,
the backlog gauges follow the database, and /readyz takes the process out of rotation when
committed events stop being dispatched."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import REGISTRY

from fulema.core.clock import clock
from fulema.core.events import publish
from tests.payments.conftest import Platform


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_payment_moves_the_payment_counters_once(platform: Platform) -> None:
    before = sample("fulema_payments_total", channel="bankpay", state="SUCCESS")
    fen_before = sample("fulema_payments_amount_fen_total", channel="bankpay")
    order = (await platform.order(amount=1250)).json()
    paid = await platform.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                                      "payer_id": "payer_rich"})
    assert paid.status_code == 200, paid.text
    await platform.settle_background()
    await platform.wait_status(order["order_id"], "SUCCESS")
    await platform.settle_background()
    assert sample("fulema_payments_total", channel="bankpay", state="SUCCESS") == before + 1
    assert sample("fulema_payments_amount_fen_total", channel="bankpay") == fen_before + 1250


async def test_requests_are_counted_by_endpoint_class_not_by_path(platform: Platform) -> None:
    before = sample("fulema_http_requests_total", endpoint="create", status="200")
    await platform.order()
    await platform.order()
    assert sample("fulema_http_requests_total", endpoint="create", status="200") == before + 2
    text = (await platform.http.get("/metrics")).text
    assert "/api/v1/orders/ord_" not in text  # no series per order


async def test_readyz_answers_ready_with_its_checks(platform: Platform) -> None:
    resp = await platform.http.get("/readyz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ready", "checks": {"database": "ok", "outbox": "ok"}}


async def test_readyz_fails_when_committed_events_wait_for_the_dispatcher(
        platform: Platform) -> None:
    async with platform.db.transaction() as s:
        publish(s, "probe.waiting", {"n": 1})
    clock.freeze(clock.now() + timedelta(seconds=120))
    try:
        resp = await platform.http.get("/readyz")
    finally:
        clock.reset()
    assert resp.status_code == 503
    assert "waited" in resp.json()["checks"]["outbox"]
    await platform.settle_background()  # the dispatcher numbers it: ready again
    assert (await platform.http.get("/readyz")).status_code == 200


async def test_the_backlog_gauges_follow_the_database(platform: Platform) -> None:
    platform.receiver.fail_next = 100  # the merchant's endpoint is down
    order = (await platform.order()).json()
    await platform.wallet("bankpay", "/scan", {"code_url": order["code_url"],
                                               "payer_id": "payer_rich"})
    await platform.settle_background()
    assert sample("fulema_notifications_pending") >= 1
    assert sample("fulema_events_unsequenced") == 0
