"""Rate limits as merchants, payers and channels meet them, through the real app: one app's
burst is refused with 429 and Retry-After while another merchant keeps being served, a flood of
cashier submissions from one phone makes only a handful of orders, channel callbacks are never
limited, and the answers keep the documented error shape."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from fulema.core.channel_settings import RateLimitSection
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.gateway.ratelimit import Limit
from fulema.merchants import service as merchants
from fulema.payments.models import Order
from tests.merchants.factories import OPERATOR, active_with_store
from tests.payments.conftest import Platform

BANK_APP = "Mozilla/5.0 (iPhone) RCBank/5.2"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"ratelimit": RateLimitSection(
        app_create_rate=0.01, app_create_burst=5, cashier_ip_rate=0.01, cashier_ip_burst=4,
        global_rate=0.01, global_burst=60)})


async def test_one_apps_burst_is_refused_while_another_merchant_is_served(
        platform: Platform) -> None:
    answers = [await platform.order() for _ in range(7)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
    refused = answers[-1]
    assert refused.json()["code"] == "RATE_LIMITED"
    assert set(refused.json()) >= {"code", "message", "request_id"}
    assert int(refused.headers["Retry-After"]) >= 1
    # another merchant's app, same moment: its own bucket
    merchant_id, _ = await active_with_store(platform.db)
    other = await merchants.create_app_credential(platform.db, merchant_id=merchant_id,
                                                  operator=OPERATOR)
    theirs = await platform.call("POST", "/api/v1/orders", {
            "out_trade_no": "OTHER-1", "amount": 100, "subject": "tea",
            "way_code": "QR_DYNAMIC", "channel": "bankpay"},
            app_id=other.app.app_id, secret=other.secret)
    assert theirs.status_code == 200, theirs.text
    # a refused create left nothing behind: five orders, not seven
    async with platform.db.transaction() as s:
        assert await s.scalar(select(func.count()).select_from(Order)
                              .where(Order.merchant_id == platform.merchant_id)) == 5


async def test_queries_have_their_own_bucket(platform: Platform) -> None:
    created = [await platform.order() for _ in range(5)]
    order_id = created[0].json()["order_id"]
    assert (await platform.order()).status_code == 429  # creates are spent
    assert (await platform.call("GET", f"/api/v1/orders/{order_id}")).status_code == 200


async def test_a_flood_of_cashier_submissions_makes_only_a_handful_of_orders(
        platform: Platform) -> None:
    answers = [await platform.http.post("/pay/q/DEMO000001", headers={"User-Agent": BANK_APP},
                                        data={"amount": "1.00"}) for _ in range(30)]
    statuses = [a.status_code for a in answers]
    assert statuses.count(429) >= 26
    page = answers[-1]
    assert page.headers["content-type"].startswith("text/html")
    assert "请" in page.text
    assert "Retry-After" in page.headers
    async with platform.db.transaction() as s:
        made = await s.scalar(select(func.count()).select_from(Order)
                              .where(Order.way_code == "QR_STATIC"))
    assert made <= 4


async def test_many_payers_polling_behind_one_address_are_not_refused(
        platform: Platform) -> None:
    """Payers behind one carrier NAT address share an IP: their result pages' status polls
    have their own budget, so forty of them (ten times the cashier's per-IP burst of 4 here)
    are all answered, and the cashier's submit limit still holds afterwards."""
    order_id = (await platform.order()).json()["order_id"]
    polls = [await platform.http.get(f"/pay/result/{order_id}/status") for _ in range(40)]
    assert [p.status_code for p in polls] == [200] * 40
    assert polls[-1].json()["status"] in ("CREATED", "PAYING")
    submits = [await platform.http.post("/pay/q/DEMO000001", headers={"User-Agent": BANK_APP},
                                        data={"amount": "1.00"}) for _ in range(8)]
    statuses = [a.status_code for a in submits]
    assert statuses[:4].count(429) == 0  # the polls spent none of the cashier's budget
    assert statuses[4:] == [429] * 4


async def test_the_status_poll_has_a_limit_of_its_own(platform: Platform) -> None:
    protection = platform.app.state.protection
    protection.ip_poll = type(protection.ip_poll)(rate=0.01, burst=3)
    order_id = (await platform.order()).json()["order_id"]
    polls = [await platform.http.get(f"/pay/result/{order_id}/status") for _ in range(5)]
    assert [p.status_code for p in polls] == [200, 200, 200, 429, 429]
    assert polls[-1].json()["code"] == "RATE_LIMITED"  # JSON: the page's script reads it
    assert int(polls[-1].headers["Retry-After"]) >= 1


async def test_channel_callbacks_are_never_limited(platform: Platform) -> None:
    answers = [await platform.http.post("/callbacks/bankpay", content=b"{}")
               for _ in range(80)]  # more than the global burst of 60
    assert all(a.status_code != 429 for a in answers)


async def test_a_degraded_query_is_answered_from_the_last_seconds(platform: Platform) -> None:
    protection = platform.app.state.protection
    protection.per_class["query"] = type(protection.per_class["query"])(rate=0.5, burst=10)
    clock.freeze(clock.now())  # the bucket refills only when the test moves time
    try:
        order = (await platform.order()).json()
        path = f"/api/v1/orders/{order['order_id']}"
        fresh = [await platform.call("GET", path) for _ in range(8)]  # 2 of 10 tokens left
        assert all("X-Fulema-Cached" not in r.headers for r in fresh)
        closed = await platform.call("POST", f"{path}/close")
        assert closed.json()["status"] == "CLOSED"
        degraded = await platform.call("GET", path)  # below the soft level (0.8 of the burst)
        assert degraded.headers["X-Fulema-Degraded"] == "1"
        assert "X-Fulema-Cached" in degraded.headers
        assert degraded.json()["status"] == "PAYING"  # the answer of a moment ago
        clock.freeze(clock.now() + timedelta(seconds=3))
        late = await platform.call("GET", path)  # still degraded, but the cache is too old
    finally:
        clock.reset()
    assert "X-Fulema-Cached" not in late.headers
    assert late.json()["status"] == "CLOSED"


def _refusals(endpoint: str) -> float:
    return REGISTRY.get_sample_value("fulema_http_requests_total",
                                     {"endpoint": endpoint, "status": "429"}) or 0.0


async def test_a_refusal_before_every_middleware_still_carries_what_they_add(
        platform: Platform) -> None:
    """The limiter runs first (a refusal must cost as little as possible), so its answer
    brings its own request id, security headers and count in the request metrics."""
    before = _refusals("cashier")
    answers = [await platform.http.post("/pay/q/DEMO000001", headers={"User-Agent": BANK_APP},
                                        data={"amount": "1.00"}) for _ in range(8)]
    refused = [a for a in answers if a.status_code == 429]
    assert refused
    assert _refusals("cashier") - before == len(refused)
    ids = {a.headers["X-Request-Id"] for a in refused}
    assert len(ids) == len(refused)
    assert all(i.startswith("req_") for i in ids)
    page = refused[-1]
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    platform.app.state.protection.ip_api = Limit(rate=0.01, burst=1)
    clock.freeze(clock.now())
    try:
        await platform.call("GET", "/api/v1/orders/ord_none")
        api = await platform.call("GET", "/api/v1/orders/ord_none")
    finally:
        clock.reset()
    assert api.status_code == 429
    assert api.json()["request_id"] == api.headers["X-Request-Id"]
    assert api.headers["X-Content-Type-Options"] == "nosniff"
