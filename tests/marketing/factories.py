"""Campaigns, templates and quotes for tests, written through the services a user would use."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.marketing import service as marketing
from fulema.marketing.schemas import CampaignIn, CampaignOut, CouponTemplateIn, CouponTemplateOut


async def campaign(db: Database, **overrides: Any) -> CampaignOut:
    now = clock.now()
    body: dict[str, Any] = dict(name="Spring 满减", funder="platform", discount_type="AMOUNT_OFF",
                                threshold=5000, off=1000, starts_at=now - timedelta(hours=1),
                                ends_at=now + timedelta(days=30), budget_total=100_000)
    body.update(overrides)
    return await marketing.create_campaign(db, actor="tester", body=CampaignIn(**body))


async def template(db: Database, **overrides: Any) -> CouponTemplateOut:
    body: dict[str, Any] = dict(name="3 yuan off", funder="merchant",
                                owner_merchant_id=overrides.pop("owner_merchant_id", None),
                                discount_type="INSTANT_OFF", off=300, quantity=100)
    if body["owner_merchant_id"] is None:
        body["funder"] = "platform"
    body.update(overrides)
    return await marketing.create_template(db, actor="tester", body=CouponTemplateIn(**body))
