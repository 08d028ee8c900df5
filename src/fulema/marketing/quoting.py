"""The quote: the best discount a payer can have on an order (or the one they picked), with
its breakdown, signed into a token that order creation accepts.

Reads only (no reservation): the budget, the coupon and the points are taken when the order is
created, inside its transaction (`reserve`), so a quote that is never used holds nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_token
from fulema.core.money import Money
from fulema.marketing import domain, quotes
from fulema.marketing.campaigns import (
    LIVE_MEMO,
    is_live,
    live_campaigns,
    remaining_of,
    rule_of,
    scope_of,
    shard_sums,
)
from fulema.marketing.coupons import TEMPLATES_MEMO, refusal, template_scopes, usable
from fulema.marketing.coupons import scope_of as coupon_scope
from fulema.marketing.domain import Candidate, Funder, Kind
from fulema.marketing.models import Campaign, Coupon, CouponTemplate, KnownPayer
from fulema.marketing.schemas import DiscountOut, QuoteOut
from fulema.merchants import service as merchants
from fulema.points import service as points_service

_T = TypeVar("_T")


def key_of(channel: str, payer_id: str | None) -> str | None:
    return points_service.payer_key(channel, payer_id) if payer_id else None


async def is_new_payer(s: AsyncSession, payer_key: str | None) -> bool:
    if payer_key is None:
        return False
    return await s.get(KnownPayer, payer_key) is None


def campaign_refusal(c: Campaign, *, now: datetime, merchant_id: str, mcc: str | None,
                     store_id: str | None, channel: str, new_payer: bool,
                     payer_key: str | None) -> ErrorCode | None:
    if not is_live(c, now):
        return ErrorCode.CAMPAIGN_NOT_ACTIVE
    if not scope_of(c).covers(merchant_id=merchant_id, mcc=mcc, store_id=store_id,
                              channel=channel):
        return ErrorCode.CAMPAIGN_NOT_APPLICABLE
    if c.eligibility == "NEW_PAYER":
        if payer_key is None:
            return ErrorCode.PAYER_REQUIRED_FOR_DISCOUNT
        if not new_payer:
            return ErrorCode.CAMPAIGN_NOT_APPLICABLE
    return None


def _candidate(c: Campaign) -> Candidate:
    seed = new_token(12) if c.discount_type == domain.DiscountType.RANDOM_OFF else ""
    return Candidate(Kind.CAMPAIGN, c.id, Funder(c.funder), rule_of(c), c.exclusive, seed)


def _coupon_candidate(c: Coupon, t: CouponTemplate) -> Candidate:
    return Candidate(Kind.COUPON, c.id, Funder(t.funder), rule_of(t), t.exclusive)


def no_discount_quote(settings: Settings, *, merchant_id: str, amount: Money, channel: str,
                      payer_id: str | None = None, store_id: str | None = None) -> QuoteOut:
    """The quote while the platform is degraded (gateway/protection.py, past the soft level):
    no discount, looked up nowhere (no campaign, coupon or points read), marked `degraded`.
    Marketing is optional work and is shed first; the payer pays the full amount, and the
    order made with this quote reserves nothing. A merchant may quote again later."""
    _check_amount(settings, amount)
    q = quotes.Quote(merchant_id=merchant_id, amount=amount, channel=channel, payer_id=payer_id,
                     store_id=store_id, lines=(),
                     expires_at=clock.now() + timedelta(seconds=settings.marketing_quote_seconds))
    return QuoteOut(quote_id=quotes.sign(settings, q), amount=amount.fen, discount_amount=0,
                    payable_amount=amount.fen, points_balance=None, expires_at=q.expires_at,
                    discounts=[], degraded=True)


def _check_amount(settings: Settings, amount: Money) -> None:
    if amount.fen <= 0:
        raise FulemaError(ErrorCode.INVALID_AMOUNT, "amount must be at least 1 fen")
    if amount.fen > settings.max_order_fen:
        raise FulemaError(ErrorCode.AMOUNT_OUT_OF_RANGE)


@dataclass(frozen=True)
class Picks:
    """What the payer picked (None and False: let the platform choose the best). One shape for
    the quote request and the best-discount order (`discount_picks`), checked by one rule."""

    campaign_id: str | None = None
    coupon_id: str | None = None
    points: int | None = None
    max_points: bool = False

    def check(self, payer_key: str | None) -> None:
        """INVALID_POINTS for negative points; PAYER_REQUIRED_FOR_DISCOUNT for a coupon or
        points without a payer to own them. Nothing is read: runs before any transaction."""
        if self.points is not None and self.points < 0:
            raise FulemaError(ErrorCode.INVALID_POINTS, "points must not be negative")
        if (self.points or self.max_points or self.coupon_id) and payer_key is None:
            raise FulemaError(ErrorCode.PAYER_REQUIRED_FOR_DISCOUNT)


async def quote(db: Database, settings: Settings, *, merchant_id: str, amount: Money,
                channel: str, payer_id: str | None = None, store_id: str | None = None,
                campaign_id: str | None = None, coupon_id: str | None = None,
                points: int | None = None, max_points: bool = False) -> QuoteOut:
    _check_amount(settings, amount)
    picks = Picks(campaign_id, coupon_id, points, max_points)
    picks.check(key_of(channel, payer_id))
    if store_id:
        await merchants.get_store(db, merchant_id=merchant_id, store_id=store_id)
    async with db.transaction() as s:
        merchant = await merchants.check_can_pay_in(s, merchant_id=merchant_id)
        q, balance = await best_in(s, db, settings, merchant_id=merchant_id, mcc=merchant.mcc,
                                   amount=amount, channel=channel, payer_id=payer_id,
                                   store_id=store_id, picks=picks)
    return QuoteOut(
        quote_id=quotes.sign(settings, q), amount=amount.fen, discount_amount=q.discount.fen,
        payable_amount=q.payable.fen, points_balance=balance, expires_at=q.expires_at,
        discounts=[DiscountOut(kind=x.line.kind.value, funder=x.line.funder.value,
                               amount=x.line.amount.fen, ref=x.line.ref, points=x.points)
                   for x in q.lines])


async def best_in(s: AsyncSession, db: Database, settings: Settings, *, merchant_id: str,
                  mcc: str | None, amount: Money, channel: str, payer_id: str | None,
                  store_id: str | None, picks: Picks, show_balance: bool = True
                  ) -> tuple[quotes.Quote, int | None]:
    """The best discount (within the payer's picks) and the payer's points balance, read in
    the caller's transaction: the quote's own, or the order's when it is created with
    `"discount": "best"` (so the choice and the reservation share one transaction). The
    caller has checked the amount, the picks, the store and the merchant. The balance is read
    only when points are asked for or `show_balance` (the quote shows it; an order does not)."""
    now = clock.now()
    key = key_of(channel, payer_id)
    campaign_id, coupon_id = picks.campaign_id, picks.coupon_id
    where = dict(now=now, merchant_id=merchant_id, mcc=mcc, store_id=store_id,
                 channel=channel, payer_key=key)
    live, sums = await _live(db, s, now)
    new_payer = (any(c.eligibility == "NEW_PAYER" for c in live)
                 and await is_new_payer(s, key))
    if campaign_id is not None:
        # a live campaign is in the memo (advice, as for the best choice); others are read
        picked = next((c for c in live if c.id == campaign_id), None) or await s.get(
            Campaign, campaign_id)
        if picked is None:
            raise FulemaError(ErrorCode.CAMPAIGN_NOT_FOUND)
        why = campaign_refusal(picked, new_payer=new_payer, **where)  # type: ignore[arg-type]
        if why is not None:
            raise FulemaError(why)
        if not domain.threshold_met(rule_of(picked), amount):
            raise FulemaError(ErrorCode.THRESHOLD_NOT_MET)
        if picked.budget_shards > 1:
            sums = {**sums, **await shard_sums(s, [picked.id])}
        camps = [picked]
    else:
        camps = [c for c in live
                 if campaign_refusal(c, new_payer=new_payer, **where) is None]  # type: ignore[arg-type]
    if coupon_id is not None:
        c = await s.get(Coupon, coupon_id)
        t = await s.get(CouponTemplate, c.template_id) if c is not None else None
        why = refusal(c, t, payer_key=key, merchant_id=merchant_id, channel=channel, now=now)
        if why is not None:
            raise FulemaError(why)
        assert c is not None
        assert t is not None
        coups = [(c, t)]
    elif key is not None and await _coupons_possible(db, s, now, merchant_id=merchant_id,
                                                     channel=channel):
        coups = [(c, t) for c, t in await usable(s, payer_key=key, now=now)
                 if coupon_scope(t).covers(merchant_id=merchant_id, mcc=None, store_id=None,
                                           channel=channel)]
    else:
        coups = []
    wants_points = bool(picks.points or picks.max_points)
    balance = (await points_service.balance_in(s, key=key)
               if key is not None and (wants_points or show_balance) else None)
    by_ref = {c.id: c for c in camps}
    cands = [_candidate(c) for c in camps]
    coupon_cands = [_coupon_candidate(c, t) for c, t in coups]
    chosen = _choose(amount, cands, coupon_cands, must_campaign=campaign_id is not None,
                     must_coupon=coupon_id is not None)
    # a campaign whose budget cannot cover its discount is left out (BUDGET_EXHAUSTED if picked)
    for line in chosen.lines:
        if line.kind == Kind.CAMPAIGN and remaining_of(by_ref[line.ref], sums) < line.amount:
            if campaign_id is not None:
                raise FulemaError(ErrorCode.BUDGET_EXHAUSTED)
            cands = [x for x in cands if x.ref != line.ref]
            chosen = _choose(amount, cands, coupon_cands, must_campaign=False,
                             must_coupon=coupon_id is not None)
            break
    seeds = {x.ref: x.seed for x in cands}
    lines = [quotes.QuotedLine(line, seed=seeds.get(line.ref) or None) for line in chosen.lines]
    if key is not None and wants_points:
        used, off = domain.points_deduction(
            amount=chosen.payable, balance=balance or 0,
            wanted=None if picks.max_points else picks.points,
            points_per_fen=settings.points_per_fen, max_bps=settings.points_max_deduction_bps)
        if off.fen > 0:
            lines.append(quotes.QuotedLine(domain.Line(Kind.POINTS, Funder.PLATFORM, off, key),
                                           points=used))
    q = quotes.Quote(merchant_id=merchant_id, amount=amount, channel=channel, payer_id=payer_id,
                     store_id=store_id,
                     expires_at=now + timedelta(seconds=settings.marketing_quote_seconds),
                     lines=tuple(lines))
    return q, balance


LIVE_MEMO_SECONDS = 2.0


async def _memoised(db: Database, key: str, now: datetime,
                    load: Callable[[], Awaitable[_T]]) -> _T:
    """`load()`, kept per process for LIVE_MEMO_SECONDS. One request refreshes a stale value;
    the requests that come while it reads keep the stale one (no herd of identical reads)."""
    memo = db.memo.get(key)
    if memo is not None:
        if memo[0] > now:
            return cast(_T, memo[1])
        db.memo[key] = (now + timedelta(seconds=LIVE_MEMO_SECONDS), memo[1])
    value = await load()
    db.memo[key] = (now + timedelta(seconds=LIVE_MEMO_SECONDS), value)
    return value


async def _live(db: Database, s: AsyncSession, now: datetime
                ) -> tuple[list[Campaign], dict[str, Money]]:
    """The live campaigns and what their shards hold, read at most every LIVE_MEMO_SECONDS per
    process: a quote is advice (the order's reservation checks status, window and budget again
    atomically), so a campaign paused a second ago may still be quoted, never reserved."""
    async def load() -> tuple[list[Campaign], dict[str, Money]]:
        rows = await live_campaigns(s, now)
        sums = await shard_sums(s, [c.id for c in rows if c.budget_shards > 1])
        for row in rows:
            s.expunge(row)
        return rows, sums

    rows, sums = await _memoised(db, LIVE_MEMO, now, load)
    return list(rows), dict(sums)


async def _coupons_possible(db: Database, s: AsyncSession, now: datetime, *, merchant_id: str,
                            channel: str) -> bool:
    """Whether any coupon template covers this merchant and channel (every template's scope,
    memoised like the campaigns): without one no payer holds a coupon usable here, and the
    payer's coupons are not read. A template made in this process is seen at once
    (create_template clears the memo), one made by another process within seconds."""
    scopes = await _memoised(db, TEMPLATES_MEMO, now, lambda: template_scopes(s))
    return any(sc.covers(merchant_id=merchant_id, mcc=None, store_id=None, channel=channel)
               for sc in scopes)


def _choose(amount: Money, camps: list[Candidate], coups: list[Candidate], *,
            must_campaign: bool, must_coupon: bool) -> domain.Breakdown:
    if not (must_campaign or must_coupon):
        return domain.best(amount, camps, coups)
    found = domain.stack(amount, camps[0] if must_campaign else None,
                         coups[0] if must_coupon else None)
    if found is None:
        if must_campaign and must_coupon and (camps[0].exclusive or coups[0].exclusive):
            raise FulemaError(ErrorCode.DISCOUNTS_NOT_STACKABLE)
        raise FulemaError(ErrorCode.THRESHOLD_NOT_MET)
    if must_campaign and not must_coupon:
        # the picked campaign, plus the best coupon that stacks with it
        options = [found, *[b for b in (domain.stack(amount, camps[0], c) for c in coups)
                            if b is not None]]
        return max(options, key=lambda b: b.discount.fen)
    if must_coupon and not must_campaign:
        # the picked coupon, plus the best campaign that stacks with it
        options = [found, *[b for b in (domain.stack(amount, c, coups[0]) for c in camps)
                            if b is not None]]
        return max(options, key=lambda b: b.discount.fen)
    return found

