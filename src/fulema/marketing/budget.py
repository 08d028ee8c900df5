"""Reserving a quote's discounts when its order is created, and splitting a refund between
cash and each discount (settling the reservations on payment events is `settlement.py`).

`reserve` runs inside the order's creation transaction, so a create that fails for any reason
reserves nothing. A campaign's budget is taken by one conditional UPDATE
(`remaining = remaining - :x WHERE remaining >= :x`, row count checked), never read then
written, so concurrent orders can never take it below zero; a daily budget is a second counter
per (campaign, day) taken the same way. A coupon is locked the same way (`state = 'LOCKED'
WHERE state = 'AVAILABLE' AND payer = :p`), so twenty orders racing for it lock it once.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import MoneyType, table_of
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.marketing import domain, quotes
from fulema.marketing.campaigns import ACTIVE, is_live
from fulema.marketing.coupons import AVAILABLE, LOCKED, refusal
from fulema.marketing.domain import Kind
from fulema.marketing.models import (
    SHARD_TAKE_INDEX,
    BudgetShard,
    Campaign,
    CampaignDay,
    Coupon,
    CouponTemplate,
    KnownPayer,
    Redemption,
)
from fulema.points import service as points_service

log = structlog.get_logger(__name__)

_c = table_of(Campaign).c
_d = table_of(CampaignDay).c
_x = bindparam("b_x", type_=MoneyType())
# Built once (hot path: every discounted order runs it).
TAKE_BUDGET = (update(table_of(Campaign))
               .where(_c.id == bindparam("b_id"), _c.status == ACTIVE,
                      _c.starts_at <= bindparam("b_now"), _c.ends_at > bindparam("b_now"),
                      _c.budget_remaining >= _x)
               .values(budget_remaining=_c.budget_remaining - _x))
GIVE_BUDGET = (update(table_of(Campaign)).where(_c.id == bindparam("b_id"))
               .values(budget_remaining=_c.budget_remaining + _x))
TAKE_DAY = (update(table_of(CampaignDay))
            .where(_d.campaign_id == bindparam("b_id"), _d.day == bindparam("b_day"),
                   _d.used + bindparam("b_fen") <= bindparam("b_limit"))
            .values(used=_d.used + bindparam("b_fen")))
GIVE_DAY = (update(table_of(CampaignDay))
            .where(_d.campaign_id == bindparam("b_id"), _d.day == bindparam("b_day"))
            .values(used=_d.used - bindparam("b_fen")))
_sh = table_of(BudgetShard).c
# A sharded campaign's slice. Whether the campaign is live is read just before, without a lock
# (LIVE_NOW): a lock there (or a subquery, which MariaDB runs as a locking read) would put
# every order of the campaign back on one row, and its shared locks deadlock with the row's
# own UPDATE in the fallback.
TAKE_SHARD = (update(table_of(BudgetShard))
              .where(_sh.campaign_id == bindparam("b_id"), _sh.shard == bindparam("b_shard"),
                     _sh.remaining >= _x)
              .values(remaining=_sh.remaining - _x))
GIVE_SHARD = (update(table_of(BudgetShard))
              .where(_sh.campaign_id == bindparam("b_id"), _sh.shard == bindparam("b_shard"))
              .values(remaining=_sh.remaining + _x))
LIVE_NOW = select(_c.id).where(_c.id == bindparam("b_id"), _c.status == ACTIVE,
                               _c.starts_at <= bindparam("b_now"), _c.ends_at > bindparam("b_now"))


def _pick() -> Any:
    """The shard that covers the amount with the least left (then the lowest number), locked.

    It reads the index (campaign_id, remaining, shard) from `(id, amount)` up, so the scan
    visits only shards that cover the amount: a spent shard is never read under a lock. That
    matters on MariaDB, which keeps the lock a locking read takes on a row that fails its
    WHERE (the primary-key scan this replaced locked every spent shard it passed, out of
    order, and two orders then waiting deadlocked). Ascending, the scan ends past the
    campaign's last entry, not on one of its spent shards. MySQL-protocol databases are told
    to use that index (a table of a few rows may otherwise be scanned by its primary key)."""
    stmt = (select(_sh.shard).where(_sh.campaign_id == bindparam("b_id"), _sh.remaining >= _x)
            .order_by(_sh.remaining, _sh.shard).limit(1)
            .with_for_update(skip_locked=True))
    for dialect in ("mysql", "mariadb"):
        stmt = stmt.with_hint(table_of(BudgetShard), f"FORCE INDEX ({SHARD_TAKE_INDEX})",
                              dialect_name=dialect)
    return stmt


PICK_FREE = _pick()
# Whether any shard still covers the amount: a plain (consistent, lock-free) read of the last
# committed values.
STILL_COVERS = select(_sh.shard).where(_sh.campaign_id == bindparam("b_id"),
                                       _sh.remaining >= _x).limit(1)
# A locking read may keep locks on rows it did not return (take_budget says where), so an
# order that finds every covering shard held polls for one instead of waiting on a lock:
# sleeps of 2, 4, 8 ... 50 ms, about 3 s in all, before it tries the campaign's row.
POLL_SLEEPS = tuple(min(0.05, 0.002 * 2 ** i) for i in range(66))
INSERT_REDEMPTION = insert(table_of(Redemption))
_r = table_of(Redemption).c
DROP_REDEMPTION = delete(table_of(Redemption)).where(_r.order_id == bindparam("b_order"),
                                                     _r.kind == bindparam("b_kind"))
ROW = -1  # `take_budget`'s answer when the campaign's own row was taken


@dataclass(frozen=True)
class _Facts:
    """What never changes after a campaign is created (only its status moves), kept per
    process so the order path reserves without reading the campaign first."""

    eligibility: str
    daily_budget: Money | None
    shards: int


_FACTS: dict[str, _Facts] = {}
_FACTS_MAX = 10_000


async def _facts(s: AsyncSession, campaign_id: str) -> _Facts:
    found = _FACTS.get(campaign_id)
    if found is not None:
        return found
    c = await s.get(Campaign, campaign_id)
    if c is None:
        raise FulemaError(ErrorCode.CAMPAIGN_NOT_FOUND)
    if len(_FACTS) >= _FACTS_MAX:
        _FACTS.clear()
    found = _Facts(c.eligibility, c.daily_budget, c.budget_shards)
    _FACTS[campaign_id] = found
    return found


async def take_budget(s: AsyncSession, campaign_id: str, amount: Money, *, now: Any,
                      shards: int) -> int | None:
    """Take `amount` from a live campaign's budget by atomic conditional UPDATEs: which
    counter gave it (a shard's number, or ROW), or None if none could (spent, or not live).

    Sharded: the campaign is read (not locked) to be live; then a shard that covers the amount
    and that no other order holds is locked (`PICK_FREE`, `FOR UPDATE SKIP LOCKED`) and taken.
    If every shard that covers it is held by an order in flight, the order polls (`PICK_FREE`
    again after a short sleep, `POLL_SLEEPS`) while a lock-free read says a shard still covers
    the amount (one of the holders may roll back, or leave enough), so N orders against a
    budget for N all get it; when none covers it, it goes to the campaign's row (where
    releases and refunds put budget back). Each take is a conditional UPDATE, so no counter
    and no sum ever goes below zero.

    Why an order never waits for a shard's lock, on any database: a locking read can keep
    locks on rows it does not return, and two orders that each keep one and wait for the
    other's deadlock. MariaDB (and MySQL) keep the lock on a row that fails the WHERE, and on
    index entries that takes left behind, delete-marked, until purge (seen in `SHOW ENGINE
    INNODB STATUS`). PostgreSQL, when a locking read meets a row another order has since
    updated, locks the row's newest version first and only then rechecks the WHERE
    (EvalPlanQual); a shard that no longer covers the amount is skipped but stays locked. An
    earlier version waited on PostgreSQL (`FOR UPDATE` without SKIP LOCKED) and CI caught the
    cycle on 27 November: three orders, each waiting for a shard the next one held. SKIP LOCKED
    never waits, and a wait that never happens cannot close a cycle; the only waits left are
    on the campaign's row and its day's row, which an order reaches last and holding at most
    its own shard. Where SKIP LOCKED takes no lock (TiDB 8.5 parses it and drops the lock) the
    picked shard can be taken meanwhile: its UPDATE fails and the order polls on.
    Up to `amount - 1` fen per counter can be left that no single order can take (documented
    in docs/marketing.md)."""
    if shards > 1:
        if (await s.execute(LIVE_NOW, {"b_id": campaign_id, "b_now": now})).first() is None:
            return None
        args = {"b_id": campaign_id, "b_x": amount}
        for pause in (0.0, *POLL_SLEEPS):
            if pause:
                await asyncio.sleep(pause)
            k = (await s.execute(PICK_FREE, args)).scalar()
            if k is not None:
                took = await s.execute(TAKE_SHARD, {"b_id": campaign_id, "b_shard": k,
                                                     "b_x": amount})
                if took.rowcount == 1:  # type: ignore[attr-defined]
                    return int(k)
            if (await s.execute(STILL_COVERS, args)).first() is None:
                break  # spent: every shard's committed value is below the amount
    taken = await s.execute(TAKE_BUDGET, {"b_id": campaign_id, "b_now": now, "b_x": amount})
    return ROW if taken.rowcount == 1 else None  # type: ignore[attr-defined]


def _insert_day_if_missing(dialect: str, campaign_id: str, day: str) -> Any:
    values = {"campaign_id": campaign_id, "day": day, "used": 0}
    if dialect == "postgresql":
        return postgresql.insert(table_of(CampaignDay)).values(values).on_conflict_do_nothing()
    if dialect in {"mysql", "mariadb"}:
        stmt = mysql.insert(table_of(CampaignDay)).values(values)
        return stmt.on_duplicate_key_update(used=_d.used)  # a no-op: the row exists
    return sqlite.insert(table_of(CampaignDay)).values(values).on_conflict_do_nothing()


def verify(settings: Settings, token: str, *, merchant_id: str, amount: Money, channel: str,
           payer_id: str | None, store_id: str | None) -> quotes.Quote:
    """The quote an order was created with, checked (signature, expiry, same order)."""
    q = quotes.read(settings, token, now=clock.now())
    quotes.check_matches(q, merchant_id=merchant_id, amount=amount, channel=channel,
                         payer_id=payer_id, store_id=store_id)
    return q


# What makes a best-discount order go on without the campaign it was quoted (the quote is
# advice read from a memo; the campaign ran out or stopped between the choice and the take).
_SPENT = frozenset({ErrorCode.BUDGET_EXHAUSTED, ErrorCode.CAMPAIGN_NOT_ACTIVE,
                    ErrorCode.CAMPAIGN_NOT_APPLICABLE})


async def reserve(s: AsyncSession, *, order_id: str, merchant_id: str, quote: quotes.Quote,
                  best: bool = False) -> quotes.Quote:
    """Take the quote's budget, coupon and points for the order, in the order's transaction;
    raises (and so rolls the whole creation back) if any of them is no longer there.

    The campaign's budget is taken LAST, after the coupon, the points and the redemptions'
    INSERT (one statement for all lines), so the counter it locks (the campaign's row or a
    shard) is held only until the commit that follows: in one busy process every statement
    after the lock waits its turn on the event loop, and the campaign's other orders with it.

    `best` (an order made with `"discount": "best"`, whose campaign the platform chose): a
    campaign that can no longer be taken is left out instead (its redemption deleted), and the
    quote actually reserved, without that line, is returned, so the order is made at the price
    it can have. The payer's own coupon and points are still refused (their race is the
    payer's own)."""
    now = clock.now()
    day = now.strftime("%Y-%m-%d")
    key = points_service.payer_key(quote.channel, quote.payer_id) if quote.payer_id else None
    campaign: quotes.QuotedLine | None = None
    rows: list[dict[str, Any]] = []
    for q in quote.lines:
        line = q.line
        if line.kind == Kind.CAMPAIGN:
            campaign = q
        elif line.kind == Kind.COUPON:
            await _lock_coupon(s, line, order_id=order_id, key=key, merchant_id=merchant_id,
                               channel=quote.channel, now=now)
        else:
            assert key is not None
            assert q.points is not None
            await points_service.hold(s, order_id=order_id, key=key, points=q.points)
        rows.append(dict(
            id=new_id("rdm"), order_id=order_id, merchant_id=merchant_id, kind=line.kind.value,
            ref=line.ref[:40], funder=line.funder.value, amount=line.amount, refunded=Money(0),
            points=q.points, seed=q.seed, state="RESERVED", overrun=False, day=day,
            created_at=now, updated_at=now, detail={}))
    if rows:
        await s.execute(INSERT_REDEMPTION, rows)
    if campaign is None:
        return quote
    try:
        await _take_campaign(s, s.get_bind().dialect.name, campaign.line, key=key, now=now,
                             day=day)
    except FulemaError as exc:
        if not best or exc.code not in _SPENT:
            raise
        log.info("marketing.campaign_left_out", order_id=order_id,
                 campaign_id=campaign.line.ref, code=exc.code.value)
        await s.execute(DROP_REDEMPTION, {"b_order": order_id, "b_kind": Kind.CAMPAIGN.value})
        return dataclasses.replace(quote, lines=tuple(q for q in quote.lines if q != campaign))
    return quote


async def _take_campaign(s: AsyncSession, dialect: str, line: domain.Line, *, key: str | None,
                         now: Any, day: str) -> int:
    """Reserve the campaign's line: eligibility, then the budget (and the day's budget)."""
    facts = await _facts(s, line.ref)
    if facts.eligibility == "NEW_PAYER" and (key is None
                                             or await s.get(KnownPayer, key) is not None):
        raise FulemaError(ErrorCode.CAMPAIGN_NOT_APPLICABLE, "the campaign is for new payers")
    shard = await take_budget(s, line.ref, line.amount, now=now, shards=facts.shards)
    if shard is None:
        c = await s.get(Campaign, line.ref, populate_existing=True)
        if c is None:
            raise FulemaError(ErrorCode.CAMPAIGN_NOT_FOUND)
        if not is_live(c, now):
            raise FulemaError(ErrorCode.CAMPAIGN_NOT_ACTIVE)
        raise FulemaError(ErrorCode.BUDGET_EXHAUSTED,
                          f"the campaign cannot cover {line.amount.fen} fen")
    if facts.daily_budget is not None:
        await s.execute(_insert_day_if_missing(dialect, line.ref, day))
        ok = await s.execute(TAKE_DAY, {"b_id": line.ref, "b_day": day,
                                        "b_fen": line.amount.fen,
                                        "b_limit": facts.daily_budget.fen})
        if ok.rowcount != 1:  # type: ignore[attr-defined]
            # given back at once: a best-discount order goes on without the campaign
            if shard == ROW:
                await s.execute(GIVE_BUDGET, {"b_id": line.ref, "b_x": line.amount})
            else:
                await s.execute(GIVE_SHARD, {"b_id": line.ref, "b_shard": shard,
                                             "b_x": line.amount})
            raise FulemaError(ErrorCode.BUDGET_EXHAUSTED, "the campaign's daily budget is spent")
    return shard


async def _lock_coupon(s: AsyncSession, line: domain.Line, *, order_id: str, key: str | None,
                       merchant_id: str, channel: str, now: Any) -> None:
    locked = await s.execute(update(Coupon).where(
        Coupon.id == line.ref, Coupon.state == AVAILABLE, Coupon.payer_key == (key or ""),
        Coupon.expires_at > now).values(state=LOCKED, order_id=order_id, updated_at=now))
    if locked.rowcount != 1:  # type: ignore[attr-defined]
        c = await s.get(Coupon, line.ref, populate_existing=True)
        t = await s.get(CouponTemplate, c.template_id) if c is not None else None
        why = refusal(c, t, payer_key=key, merchant_id=merchant_id, channel=channel, now=now)
        raise FulemaError(why or ErrorCode.COUPON_NOT_AVAILABLE)


# Settlement (paid, unpaid, paid after close, refunded) is in `settlement.py`; it gives budget
# back with GIVE_BUDGET and GIVE_DAY above.


async def points_multiplier(s: AsyncSession, *, campaign_ids: list[str]) -> int:
    if not campaign_ids:
        return 1
    rows = (await s.scalars(select(Campaign.points_multiplier).where(
        Campaign.id.in_(campaign_ids)))).all()
    return max([1, *rows])


def refund_split(*, amount: int, payable: int, discounts: list[dict[str, Any]],
                 prior: list[tuple[int, list[dict[str, Any]]]], refund: int
                 ) -> tuple[int, list[dict[str, Any]]]:
    """(cash, discount shares) of one refund of an order, given the refunds before it
    (succeeded or in flight: their cash and discount shares). See domain.split_refund."""
    weights = [payable, *[int(d["amount"]) for d in discounts]]
    if sum(weights) != amount:  # an order from before discounts, or a view without them
        weights = [amount] + [0] * len(discounts)
    so_far = [sum(cash for cash, _ in prior)]
    for i, d in enumerate(discounts):
        so_far.append(sum(int(p[i]["amount"]) for _, p in prior
                          if i < len(p) and p[i].get("kind") == d["kind"]))
    shares = domain.split_refund(refund=refund, weights=weights, so_far=so_far)
    return shares[0], [{**{k: d[k] for k in ("kind", "funder", "ref")}, "amount": share}
                       for d, share in zip(discounts, shares[1:], strict=True)]
