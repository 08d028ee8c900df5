"""The demo campaign and coupon template, seeded with the demo merchant (development only), so
the static-QR cashier of plate DEMO000001 shows a discount out of the box:

- 满20减2 (bank-funded, `AMOUNT_OFF`: spend >= 20.00, 2.00 off), budget 500.00, at the demo
  merchant, running for a year from the first start;
- 满30减5 coupons (merchant-funded), one granted to a payer after each paid order of at least
  10.00 at the demo merchant (grant on event), at most 3 per payer and 1 a day.

Fixed ids make the seed idempotent and safe when two processes start at once: the second
insert meets the primary key and is ignored. The 12.50 of `fulema demo`'s story stays below
both thresholds, so its figures do not change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.money import Money
from fulema.marketing.campaigns import ACTIVE, rule_columns
from fulema.marketing.models import Campaign, CouponTemplate
from fulema.marketing.schemas import RuleIn

DEMO_CAMPAIGN_ID = "cmp_demo_man20jian2"
DEMO_TEMPLATE_ID = "ctp_demo_man30jian5"
DEMO_ACTOR = "system:demo"
DEMO_BUDGET = Money(50_000)  # 500.00


@dataclass(frozen=True)
class DemoMarketing:
    campaign_id: str
    template_id: str


async def seed_demo_marketing(db: Database, *, merchant_id: str) -> DemoMarketing:
    """The demo campaign and template for `merchant_id`, created once."""
    now = clock.now()
    async with db.transaction() as s:
        have_campaign = await s.get(Campaign, DEMO_CAMPAIGN_ID) is not None
        have_template = await s.get(CouponTemplate, DEMO_TEMPLATE_ID) is not None
    if not have_campaign:
        await _insert(db, Campaign(
            id=DEMO_CAMPAIGN_ID, name="演示：满20减2（银行补贴）", funder="platform",
            owner_merchant_id=None, status=ACTIVE, starts_at=now - timedelta(minutes=5),
            ends_at=now + timedelta(days=365), merchant_ids=[merchant_id], mccs=None,
            store_ids=None, channels=None, eligibility="ANY", exclusive=False,
            points_multiplier=1, budget_total=DEMO_BUDGET, budget_remaining=DEMO_BUDGET,
            daily_budget=None, created_by=DEMO_ACTOR, created_at=now, updated_at=now,
            **rule_columns(RuleIn(discount_type="AMOUNT_OFF", threshold=2000, off=200))))
    if not have_template:
        await _insert(db, CouponTemplate(
            id=DEMO_TEMPLATE_ID, name="演示：满30减5 券（消费满10元赠送）", funder="merchant",
            owner_merchant_id=merchant_id, status=ACTIVE, merchant_ids=[merchant_id],
            channels=None, exclusive=False, valid_days=30, per_payer_limit=3, per_day_limit=1,
            quantity=10_000, issued=0, grant_event="payment.succeeded",
            grant_min_amount=Money(1000), grant_merchant_ids=None, created_by=DEMO_ACTOR,
            created_at=now, **rule_columns(RuleIn(discount_type="AMOUNT_OFF", threshold=3000,
                                                  off=500))))
    return DemoMarketing(campaign_id=DEMO_CAMPAIGN_ID, template_id=DEMO_TEMPLATE_ID)


async def _insert(db: Database, row: Campaign | CouponTemplate) -> None:
    try:
        async with db.transaction() as s:
            s.add(row)
    except IntegrityError:  # another process seeded it between our look and our write
        return
