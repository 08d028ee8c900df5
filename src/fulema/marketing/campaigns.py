"""Campaigns: the operator's use cases (create, pause, resume, end, list, per-day figures) and
the reads the quote and the reservation need. Every operator action writes its audit record in
the transaction of the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.marketing import domain
from fulema.marketing.models import (
    BudgetShard,
    Campaign,
    CampaignDay,
    CouponTemplate,
    Redemption,
)
from fulema.marketing.schemas import (
    CampaignDayOut,
    CampaignIn,
    CampaignOut,
    CampaignStatsOut,
    RuleIn,
)

ACTIVE, PAUSED, ENDED = "ACTIVE", "PAUSED", "ENDED"
LIVE_MEMO = "marketing.live"  # the quote's per-process memo of live campaigns
_MOVES = {"pause": ({ACTIVE}, PAUSED), "resume": ({PAUSED}, ACTIVE),
          "end": ({ACTIVE, PAUSED}, ENDED)}


def rule_of(row: Campaign | CouponTemplate) -> domain.Rule:
    return domain.Rule(type=domain.DiscountType(row.discount_type), threshold=row.threshold,
                       off=row.off, percent_bps=row.percent_bps, cap=row.cap,
                       random_min=row.random_min, random_max=row.random_max)


def rule_columns(body: RuleIn) -> dict[str, Any]:
    rule = domain.Rule(type=domain.DiscountType(body.discount_type),
                       threshold=Money(body.threshold), off=Money(body.off),
                       percent_bps=body.percent_bps,
                       cap=Money(body.cap) if body.cap is not None else None,
                       random_min=Money(body.random_min), random_max=Money(body.random_max))
    rule.check()
    return dict(discount_type=rule.type.value, threshold=rule.threshold, off=rule.off,
                percent_bps=rule.percent_bps, cap=rule.cap, random_min=rule.random_min,
                random_max=rule.random_max)


def _tuple(value: list[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None


def scope_of(c: Campaign) -> domain.Scope:
    return domain.Scope(merchant_ids=_tuple(c.merchant_ids), mccs=_tuple(c.mccs),
                        store_ids=_tuple(c.store_ids), channels=_tuple(c.channels))


def is_live(c: Campaign, now: datetime) -> bool:
    return c.status == ACTIVE and c.starts_at <= now < c.ends_at


def split_budget(total: int, shards: int) -> list[int]:
    """`total` fen over `shards` counters, exactly: the first `total mod shards` get 1 fen more."""
    q, r = divmod(total, shards)
    return [q + 1 if i < r else q for i in range(shards)]


async def shard_sums(s: AsyncSession, campaign_ids: list[str]) -> dict[str, Money]:
    """What the shards of these (sharded) campaigns hold, by campaign."""
    if not campaign_ids:
        return {}
    rows = (await s.execute(select(BudgetShard.campaign_id, func.sum(BudgetShard.remaining))
                            .where(BudgetShard.campaign_id.in_(campaign_ids))
                            .group_by(BudgetShard.campaign_id))).all()
    return {cid: Money(int(total.fen if isinstance(total, Money) else total or 0))
            for cid, total in rows}


def remaining_of(c: Campaign, sums: dict[str, Money]) -> Money:
    """The campaign's remaining budget: its row's counter plus its shards (if sharded)."""
    return c.budget_remaining + sums.get(c.id, Money(0))


def campaign_view(c: Campaign, sums: dict[str, Money] | None = None) -> CampaignOut:
    return CampaignOut(
        campaign_id=c.id, name=c.name, funder=c.funder, owner_merchant_id=c.owner_merchant_id,
        status=c.status, discount_type=c.discount_type, threshold=c.threshold.fen,
        off=c.off.fen, percent_bps=c.percent_bps, cap=c.cap.fen if c.cap else None,
        random_min=c.random_min.fen, random_max=c.random_max.fen, starts_at=c.starts_at,
        ends_at=c.ends_at, merchant_ids=c.merchant_ids, mccs=c.mccs, store_ids=c.store_ids,
        channels=c.channels, eligibility=c.eligibility, exclusive=c.exclusive,
        points_multiplier=c.points_multiplier, budget_total=c.budget_total.fen,
        budget_remaining=remaining_of(c, sums or {}).fen, budget_shards=c.budget_shards,
        daily_budget=c.daily_budget.fen if c.daily_budget else None, created_at=c.created_at)


async def create(db: Database, *, actor: str, body: CampaignIn) -> CampaignOut:
    if body.ends_at <= body.starts_at:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "ends_at must be after starts_at")
    if body.funder == "merchant" and not body.owner_merchant_id:
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          "a merchant-funded campaign needs owner_merchant_id")
    merchant_ids = body.merchant_ids
    if body.funder == "merchant":
        # a merchant funds discounts at its own tills only
        merchant_ids = [body.owner_merchant_id or ""]
    now = clock.now()
    row = Campaign(
        id=new_id("cmp"), name=body.name, funder=body.funder,
        owner_merchant_id=body.owner_merchant_id, status=ACTIVE,
        starts_at=body.starts_at, ends_at=body.ends_at, merchant_ids=merchant_ids,
        mccs=body.mccs, store_ids=body.store_ids,
        channels=[c.value for c in body.channels] if body.channels is not None else None,
        eligibility=body.eligibility, exclusive=body.exclusive,
        points_multiplier=body.points_multiplier, budget_total=Money(body.budget_total),
        budget_remaining=Money(body.budget_total if body.budget_shards == 1 else 0),
        budget_shards=body.budget_shards,
        daily_budget=Money(body.daily_budget) if body.daily_budget else None,
        created_by=actor, created_at=now, updated_at=now, **rule_columns(body))
    shards = [BudgetShard(campaign_id=row.id, shard=i, remaining=Money(fen)) for i, fen in
              enumerate(split_budget(body.budget_total, body.budget_shards))
              ] if body.budget_shards > 1 else []
    async with db.transaction() as s:
        s.add(row)
        await s.flush()
        s.add_all(shards)
        await s.flush()
        await audit.record(s, actor=actor, action="campaign.create", target_type="campaign",
                           target_id=row.id, detail={"name": body.name, "funder": body.funder,
                                                     "budget_total": body.budget_total})
    db.memo.pop(LIVE_MEMO, None)  # this process quotes it at once; others within seconds
    return campaign_view(row, {row.id: Money(body.budget_total)} if shards else None)


async def move(db: Database, *, actor: str, campaign_id: str, action: str) -> CampaignOut:
    """pause / resume / end; ILLEGAL_STATE_TRANSITION for any other move."""
    allowed_from, target = _MOVES[action]
    async with db.transaction() as s:
        c = await s.get(Campaign, campaign_id, with_for_update=True)
        if c is None:
            raise FulemaError(ErrorCode.CAMPAIGN_NOT_FOUND)
        if c.status not in allowed_from:
            raise FulemaError(ErrorCode.ILLEGAL_STATE_TRANSITION,
                              f"a {c.status} campaign cannot {action}")
        before = c.status
        c.status, c.updated_at = target, clock.now()
        await audit.record(s, actor=actor, action=f"campaign.{action}", target_type="campaign",
                           target_id=c.id, detail={"from": before, "to": target})
        view = campaign_view(c, await shard_sums(s, [c.id]) if c.budget_shards > 1 else None)
    db.memo.pop(LIVE_MEMO, None)
    return view


async def list_campaigns(db: Database) -> list[CampaignOut]:
    async with db.transaction() as s:
        rows = (await s.scalars(select(Campaign).order_by(Campaign.created_at))).all()
        sums = await shard_sums(s, [c.id for c in rows if c.budget_shards > 1])
        return [campaign_view(c, sums) for c in rows]


async def stats(db: Database, *, campaign_id: str) -> CampaignStatsOut:
    """Spend, redemptions and remaining budget, in total and per UTC day."""
    async with db.transaction() as s:
        c = await s.get(Campaign, campaign_id)
        if c is None:
            raise FulemaError(ErrorCode.CAMPAIGN_NOT_FOUND)
        rows = (await s.execute(
            select(Redemption.day, Redemption.state, func.count(),
                   func.sum(Redemption.amount), func.sum(Redemption.refunded))
            .where(Redemption.kind == domain.Kind.CAMPAIGN.value, Redemption.ref == campaign_id)
            .group_by(Redemption.day, Redemption.state))).all()
        used = {d.day: d.used for d in (await s.scalars(select(CampaignDay).where(
            CampaignDay.campaign_id == campaign_id))).all()}
        view = campaign_view(c, await shard_sums(s, [c.id]) if c.budget_shards > 1 else None)
    days: dict[str, dict[str, int]] = {}
    for day, state, count, amount, refunded in rows:
        d = days.setdefault(day, {"redemptions": 0, "spend": 0, "reserved": 0})
        amount_fen = int(amount.fen if isinstance(amount, Money) else amount or 0)
        refunded_fen = int(refunded.fen if isinstance(refunded, Money) else refunded or 0)
        if state == "CONSUMED":
            d["redemptions"] += int(count)
            d["spend"] += amount_fen - refunded_fen
        elif state == "RESERVED":
            d["reserved"] += amount_fen
    daily = c.daily_budget.fen if c.daily_budget else None
    out = [CampaignDayOut(day=day, redemptions=d["redemptions"], spend=d["spend"],
                          reserved=d["reserved"],
                          daily_remaining=None if daily is None else daily - used.get(day, 0))
           for day, d in sorted(days.items())]
    return CampaignStatsOut(campaign=view, spend=sum(d.spend for d in out),
                            redemptions=sum(d.redemptions for d in out),
                            remaining=view.budget_remaining, days=out)


async def live_campaigns(s: AsyncSession, now: datetime) -> list[Campaign]:
    rows = (await s.scalars(select(Campaign).where(
        Campaign.status == ACTIVE, Campaign.ends_at > now).order_by(Campaign.id))).all()
    return [c for c in rows if c.starts_at <= now]
