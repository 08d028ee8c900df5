"""Every signed merchant route goes through the one door (`gateway.signed`): a marketing quote
spends the app's rate limit like an order query does, an unsigned or replayed quote is refused
before its body is read, and the bill download checks the same signature."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from fulema.core.channel_settings import RateLimitSection
from fulema.core.config import Settings
from fulema.gateway.signed import signed_request, signed_request_deferred_nonce
from tests.payments.conftest import Platform, platform

QUOTE = {"amount": 6000, "channel": "bankpay", "payer_id": "payer_rich"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"ratelimit": RateLimitSection(
        app_other_rate=0.01, app_other_burst=3, global_rate=0.01, global_burst=60)})


async def test_a_marketing_quote_is_rate_limited_per_app(platform: Platform) -> None:
    answers = [await platform.call("POST", "/api/v1/marketing/quote", QUOTE) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429], answers[-1].text
    refused = answers[-1]
    assert refused.json()["code"] == "RATE_LIMITED"
    assert int(refused.headers["Retry-After"]) >= 1


async def test_an_unsigned_quote_is_refused_before_its_body_is_read(platform: Platform) -> None:
    resp = await platform.http.post("/api/v1/marketing/quote", content=b"not json")
    assert resp.status_code == 401, resp.text
    assert resp.json()["code"] == "SIGNATURE_MISSING"


async def test_a_replayed_quote_is_refused(platform: Platform) -> None:
    first = await platform.call("POST", "/api/v1/marketing/quote", QUOTE)
    assert first.status_code == 200, first.text
    req = first.request
    again = await platform.http.post("/api/v1/marketing/quote", content=req.content,
                                     headers=dict(req.headers))
    assert again.json()["code"] == "NONCE_REPLAYED"


async def test_a_bad_points_value_in_a_quote_keeps_its_own_code(platform: Platform) -> None:
    resp = await platform.call("POST", "/api/v1/marketing/quote", {**QUOTE, "points": "many"})
    assert resp.json()["code"] == "INVALID_POINTS"


async def test_every_merchant_api_route_goes_through_the_signed_door(platform: Platform) -> None:
    doors = {signed_request, signed_request_deferred_nonce}
    unsigned = []
    for route in platform.app.routes:
        if not isinstance(route, APIRoute) or not route.path.startswith("/api/v1/"):
            continue
        calls = {d.call for d in route.dependant.dependencies}
        if not calls & doors:
            unsigned.append(route.path)
    assert unsigned == []

__all__ = ["platform"]
