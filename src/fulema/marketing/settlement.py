"""Settling an order's reservations when it is paid, fails or closes, is paid after its close,
or is refunded: the work of the consumer `marketing.settle` (jobs.py), for one event or for a
dispatcher round of them in one transaction.

A round costs the same few statements however many of its orders carry no discount, which is
most of them: one SELECT of the round's known payers and one multi-row INSERT of the new ones,
one locking SELECT of the round's redemptions (`order_id IN (...)`). Only the orders that have
redemptions get per-order work, each exactly as when it comes alone, in event order.

Lock order. `reserve` (the order's creation) takes the payer's coupon and points first and the
campaign's counter (its row, a shard, its day) last; one event alone settles in that order too.
A round settles every order's coupons and points first and every campaign counter after them
(in event order: a budget taken again after a close sees the releases before it), so a round
never holds a counter while it waits for a coupon or an account that a creation holding that
counter wants; the accounts of a round's points are locked in id order first, as `points.earn`
locks its round's. The effects are those of the events one by one, in order: counters and
coupons or points are separate rows, and each kind keeps its own order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.money import Money
from fulema.marketing.budget import GIVE_BUDGET, GIVE_DAY
from fulema.marketing.coupons import AVAILABLE, EXPIRED, LOCKED, USED
from fulema.marketing.domain import Kind
from fulema.marketing.models import BudgetShard, Campaign, Coupon, KnownPayer, Redemption
from fulema.points import service as points_service

log = structlog.get_logger(__name__)

PAID, FAILED, CLOSED = "payment.succeeded", "payment.failed", "payment.closed"
PAID_AFTER_CLOSE, REFUNDED = "payment.paid_after_close", "refund.succeeded"
Later = list[Callable[[], Awaitable[None]]]


@dataclass(frozen=True)
class Settle:
    """One event's settlement: its topic and order, the payer (paid topics: the payer becomes
    known; a paid-after-close retakes), a refund's id and discount shares."""

    topic: str
    order_id: str
    payer_key: str | None = None
    refund_id: str = ""
    shares: Sequence[dict[str, Any]] = field(default_factory=tuple)


async def settle(s: AsyncSession, items: Sequence[Settle], *,
                 settings: Settings | None = None) -> None:
    """Settle `items` (one event's, or a round's in event order) in the caller's transaction.
    `settings` is needed for refunds (points per fen)."""
    now = clock.now()
    await _known_payers(s, [i.payer_key for i in items if i.topic == PAID and i.payer_key],
                        now)
    by_order = await _redemptions(s, [i.order_id for i in items])
    if not by_order:
        return
    points_orders = [o for o, rows in by_order.items() if any(r.kind == Kind.POINTS
                                                                for r in rows)]
    await points_service.lock_accounts_of_holds(s, order_ids=points_orders)
    later: Later = []  # the campaign counters, after every coupon and account of the round
    for item in items:
        rows = by_order.get(item.order_id)
        if not rows:
            continue
        if item.topic == PAID:
            await _on_paid(s, item.order_id, rows, now)
        elif item.topic in (FAILED, CLOSED):
            await _on_unpaid(s, item.order_id, rows, now, later)
        elif item.topic == PAID_AFTER_CLOSE:
            await _on_paid_after_close(s, item.order_id, rows, now, later)
        elif item.topic == REFUNDED:
            assert settings is not None, "a refund's points need the settings"
            await _on_refund(s, settings, item, rows, later)
    for step in later:
        await step()


async def _known_payers(s: AsyncSession, keys: list[str], now: datetime) -> None:
    """Paying makes a payer known (no longer a new payer for campaigns): the round's payers
    looked up at once and the new ones inserted in one statement."""
    keys = list(dict.fromkeys(keys))
    if not keys:
        return
    known = set((await s.scalars(select(KnownPayer.payer_key).where(
        KnownPayer.payer_key.in_(keys)))).all())
    new = [dict(payer_key=k, first_paid_at=now) for k in keys if k not in known]
    if new:
        await s.execute(insert(KnownPayer), new)


async def _redemptions(s: AsyncSession, order_ids: list[str]) -> dict[str, list[Redemption]]:
    """The orders' redemptions, locked, each order's campaign line last: its counter is
    locked after the payer's coupon and points, in the order `reserve` takes them."""
    ids = sorted(set(order_ids))
    rows = (await s.scalars(select(Redemption).where(Redemption.order_id.in_(ids))
                            .order_by(Redemption.order_id, Redemption.id)
                            .with_for_update())).all()
    by_order: dict[str, list[Redemption]] = {}
    for r in rows:
        by_order.setdefault(r.order_id, []).append(r)
    for mine in by_order.values():
        mine.sort(key=lambda r: r.kind == Kind.CAMPAIGN)
    return by_order


async def _on_paid(s: AsyncSession, order_id: str, rows: list[Redemption], now: datetime
                   ) -> None:
    """The order is paid: its reservations are consumed, its coupon used."""
    for r in rows:
        if r.state != "RESERVED":
            continue
        r.state, r.updated_at = "CONSUMED", now
        if r.kind == Kind.COUPON:
            await s.execute(update(Coupon).where(Coupon.id == r.ref, Coupon.state == LOCKED)
                            .values(state=USED, updated_at=now))
        elif r.kind == Kind.POINTS:
            await points_service.consume_hold(s, order_id=order_id)


async def _on_unpaid(s: AsyncSession, order_id: str, rows: list[Redemption], now: datetime,
                     later: Later) -> None:
    """The order failed or closed: its budget, coupon and points go back."""
    for r in rows:
        if r.state != "RESERVED":
            continue
        r.state, r.updated_at = "RELEASED", now
        if r.kind == Kind.CAMPAIGN:
            later.append(_give(s, r.ref, r.amount, day=r.day))
        elif r.kind == Kind.COUPON:
            c = await s.get(Coupon, r.ref, with_for_update=True)
            if c is not None and c.state == LOCKED and c.order_id == order_id:
                c.state = AVAILABLE if c.expires_at > now else EXPIRED
                c.order_id, c.updated_at = None, now
        else:
            await points_service.release_hold(s, order_id=order_id)


def _give(s: AsyncSession, campaign_id: str, amount: Money, *, day: str | None
          ) -> Callable[[], Awaitable[None]]:
    """A campaign's budget given back (and its day's, for a release), to run in `later`."""
    async def give() -> None:
        await s.execute(GIVE_BUDGET, {"b_id": campaign_id, "b_x": amount})
        if day is not None:
            await s.execute(GIVE_DAY, {"b_id": campaign_id, "b_day": day, "b_fen": amount.fen})
    return give


async def _on_paid_after_close(s: AsyncSession, order_id: str, rows: list[Redemption],
                               now: datetime, later: Later) -> None:
    """Money moved after we had released the reservations: take them again. A budget that
    cannot cover it any more is not taken below zero; the redemption is marked `overrun` for
    the funder to settle by hand."""
    for r in rows:
        if r.state != "RELEASED":
            continue
        r.state, r.updated_at = "CONSUMED", now
        if r.kind == Kind.CAMPAIGN:
            later.append(_retake_step(s, order_id, r))
        elif r.kind == Kind.COUPON:
            await s.execute(update(Coupon).where(Coupon.id == r.ref).values(
                state=USED, order_id=order_id, updated_at=now))
        else:
            await points_service.retake_hold(s, order_id=order_id)


def _retake_step(s: AsyncSession, order_id: str, r: Redemption
                 ) -> Callable[[], Awaitable[None]]:
    async def retake() -> None:
        if not await _retake(s, r.ref, r.amount):
            r.overrun = True
            log.warning("marketing.budget_overrun", order_id=order_id, campaign_id=r.ref,
                        amount=r.amount.fen)
    return retake


async def _retake(s: AsyncSession, campaign_id: str, amount: Money) -> bool:
    """Take `amount` again for an order paid after its close, whatever the campaign's state:
    from its row, else from any shard that covers it (never below zero)."""
    taken = await s.execute(update(Campaign).where(
        Campaign.id == campaign_id, Campaign.budget_remaining >= amount).values(
        budget_remaining=Campaign.budget_remaining - amount))
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        return True
    for k in (await s.scalars(select(BudgetShard.shard).where(
            BudgetShard.campaign_id == campaign_id).order_by(BudgetShard.shard))).all():
        took = await s.execute(update(BudgetShard).where(
            BudgetShard.campaign_id == campaign_id, BudgetShard.shard == k,
            BudgetShard.remaining >= amount).values(remaining=BudgetShard.remaining - amount))
        if took.rowcount == 1:  # type: ignore[attr-defined]
            return True
    return False


async def _on_refund(s: AsyncSession, settings: Settings, item: Settle,
                     rows: list[Redemption], later: Later) -> None:
    """A refund's discount shares go back to their funders: a campaign's budget grows again,
    redeemed points return to the payer; a coupon stays used (its share is recorded)."""
    by_kind = {r.kind: r for r in rows}
    for share in item.shares:
        amount = Money(int(share.get("amount", 0)))
        r = by_kind.get(str(share.get("kind")))
        if r is None or amount.fen <= 0 or r.state != "CONSUMED":
            continue
        amount = Money(min(amount.fen, (r.amount - r.refunded).fen))
        r.refunded = r.refunded + amount
        r.updated_at = clock.now()
        if r.kind == Kind.CAMPAIGN:
            later.append(_give(s, r.ref, amount, day=None))
        elif r.kind == Kind.POINTS:
            await points_service.return_points(s, settings, order_id=item.order_id,
                                               points=amount.fen * settings.points_per_fen,
                                               ref=item.refund_id)


# One event at a time (the service's functions, and the consumer's lone events).


async def on_paid(s: AsyncSession, *, order_id: str, payer_key: str | None) -> None:
    """The order is paid: its reservations are consumed, its coupon used."""
    await settle(s, [Settle(PAID, order_id, payer_key)])


async def on_unpaid(s: AsyncSession, *, order_id: str) -> None:
    """The order failed or closed: its budget, coupon and points go back."""
    await settle(s, [Settle(CLOSED, order_id)])


async def on_paid_after_close(s: AsyncSession, *, order_id: str, payer_key: str | None) -> None:
    """Money moved after the reservations were released: they are taken again."""
    await settle(s, [Settle(PAID_AFTER_CLOSE, order_id, payer_key)])


async def on_refund(s: AsyncSession, settings: Settings, *, order_id: str, refund_id: str,
                    shares: list[dict[str, Any]]) -> None:
    """A refund's discount shares go back to their funders."""
    await settle(s, [Settle(REFUNDED, order_id, refund_id=refund_id, shares=tuple(shares))],
                 settings=settings)
