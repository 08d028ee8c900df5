"""Budgets and coupons under concurrency, on every database: 200 orders racing for a budget
that fits 50 get exactly 50 reservations and leave exactly 0; 20 orders racing for one coupon
lock it once. Each reservation runs in its own transaction, as an order's creation does."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.marketing import quotes
from fulema.marketing import service as marketing
from fulema.marketing.campaigns import split_budget
from fulema.marketing.domain import Funder, Kind, Line
from fulema.marketing.models import BudgetShard, Campaign, Coupon, Redemption
from tests.marketing import factories


def quote_with(*lines: quotes.QuotedLine, payer: str | None = None) -> quotes.Quote:
    return quotes.Quote(merchant_id="mch_1", amount=Money(10_000), channel="wechat",
                        payer_id=payer, store_id=None,
                        expires_at=clock.now() + timedelta(minutes=5), lines=lines)


async def race(db: Database, n: int, q: quotes.Quote, prefix: str = "") -> list[str]:
    """n concurrent reservations of orders `<prefix>_<i>`; the error code (or "OK") of each.
    No retry: a deadlock (InnoDB's victim, PostgreSQL's 40P01) fails the test, since
    reservations are designed not to deadlock (budget.take_budget).

    Order ids are new for every race unless named (as real order ids are): an earlier test's
    rows of the same ids, deleted but not yet purged by InnoDB, make concurrent INSERTs of the
    redemptions' unique (order_id, kind) take gap locks that deadlock each other, which is a
    property of reusing ids, not of reservations."""
    prefix = prefix or f"ord{secrets.token_hex(4)}"

    async def one(i: int) -> str:
        try:
            async with db.transaction() as s:
                await marketing.reserve(s, order_id=f"{prefix}_{i}", merchant_id="mch_1",
                                        quote=q)
        except FulemaError as exc:
            return exc.code.value
        return "OK"
    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def test_200_orders_against_a_budget_for_50(db: Database) -> None:
    camp = await factories.campaign(db, discount_type="INSTANT_OFF", threshold=0, off=100,
                                    budget_total=50 * 100)
    q = quote_with(quotes.QuotedLine(Line(Kind.CAMPAIGN, Funder.PLATFORM, Money(100),
                                          camp.campaign_id)))
    results = await race(db, 200, q)
    assert results.count("OK") == 50
    assert set(results) == {"OK", ErrorCode.BUDGET_EXHAUSTED.value}
    async with db.transaction() as s:
        c = await s.get(Campaign, camp.campaign_id)
        assert c is not None
        assert c.budget_remaining == Money(0)
        assert (await s.execute(select(func.count()).select_from(Redemption))).scalar_one() == 50


async def test_daily_budget_caps_a_day(db: Database) -> None:
    camp = await factories.campaign(db, discount_type="INSTANT_OFF", threshold=0, off=100,
                                    budget_total=10_000, daily_budget=300)
    q = quote_with(quotes.QuotedLine(Line(Kind.CAMPAIGN, Funder.PLATFORM, Money(100),
                                          camp.campaign_id)))
    results = await race(db, 10, q)
    assert results.count("OK") == 3
    async with db.transaction() as s:
        c = await s.get(Campaign, camp.campaign_id)
        # the whole creation rolled back for the refused ones: total budget untouched by them
        assert c is not None
        assert c.budget_remaining == Money(10_000 - 300)


async def test_one_coupon_20_orders_one_wins(db: Database) -> None:
    tpl = await factories.template(db)
    coupon = await marketing.issue(db, template_id=tpl.template_id, payer_key="wechat:p1",
                                   via="GRANT")
    q = quote_with(quotes.QuotedLine(Line(Kind.COUPON, Funder.PLATFORM, Money(300),
                                          coupon.coupon_id)), payer="p1")
    results = await race(db, 20, q)
    assert results.count("OK") == 1
    assert set(results) == {"OK", ErrorCode.COUPON_NOT_AVAILABLE.value}
    async with db.transaction() as s:
        c = await s.get(Coupon, coupon.coupon_id)
        assert c is not None
        assert c.state == "LOCKED"


async def test_release_gives_budget_and_coupon_back_once(db: Database) -> None:
    camp = await factories.campaign(db, discount_type="INSTANT_OFF", threshold=0, off=100,
                                    budget_total=1000, daily_budget=500)
    tpl = await factories.template(db)
    coupon = await marketing.issue(db, template_id=tpl.template_id, payer_key="wechat:p1",
                                   via="CLAIM")
    q = quote_with(quotes.QuotedLine(Line(Kind.CAMPAIGN, Funder.PLATFORM, Money(100),
                                          camp.campaign_id)),
                   quotes.QuotedLine(Line(Kind.COUPON, Funder.PLATFORM, Money(300),
                                          coupon.coupon_id)), payer="p1")
    assert await race(db, 1, q, prefix="rel") == ["OK"]
    for _ in range(2):  # a second delivery changes nothing
        async with db.transaction() as s:
            await marketing.on_unpaid(s, order_id="rel_0")
    stats = await marketing.stats(db, campaign_id=camp.campaign_id)
    assert stats.remaining == 1000
    assert stats.days[0].daily_remaining == 500
    async with db.transaction() as s:
        c = await s.get(Coupon, coupon.coupon_id)
        assert c is not None
        assert (c.state, c.order_id) == ("AVAILABLE", None)
    # and the coupon can be used again
    assert await race(db, 1, q, prefix="rel_again") == ["OK"]


# ----------------------------------------------------------------- sharded budget counters


async def _sharded_totals(db: Database, campaign_id: str) -> tuple[int, list[int]]:
    async with db.transaction() as s:
        c = await s.get(Campaign, campaign_id)
        assert c is not None
        shards = [sh.remaining.fen for sh in (await s.scalars(select(BudgetShard).where(
            BudgetShard.campaign_id == campaign_id).order_by(BudgetShard.shard))).all()]
        return c.budget_remaining.fen, shards


async def test_200_orders_against_a_sharded_budget_for_50(db: Database) -> None:
    camp = await factories.campaign(db, discount_type="INSTANT_OFF", threshold=0, off=100,
                                    budget_total=50 * 100, budget_shards=10)
    assert (camp.budget_remaining, camp.budget_shards) == (5000, 10)
    assert await _sharded_totals(db, camp.campaign_id) == (0, [500] * 10)
    q = quote_with(quotes.QuotedLine(Line(Kind.CAMPAIGN, Funder.PLATFORM, Money(100),
                                          camp.campaign_id)))
    results = await race(db, 200, q)
    assert results.count("OK") == 50
    assert set(results) == {"OK", ErrorCode.BUDGET_EXHAUSTED.value}
    assert await _sharded_totals(db, camp.campaign_id) == (0, [0] * 10)
    async with db.transaction() as s:
        assert (await s.execute(select(func.count()).select_from(Redemption))).scalar_one() == 50
    assert (await marketing.stats(db, campaign_id=camp.campaign_id)).remaining == 0


async def test_a_sharded_budget_never_goes_below_zero_and_its_sum_stays_exact(
        db: Database) -> None:
    """5000 over 8 shards is 625 each: 6 orders of 100 per shard, 25 fen left in each that no
    single order of 100 can take (the documented cost of sharding)."""
    camp = await factories.campaign(db, discount_type="INSTANT_OFF", threshold=0, off=100,
                                    budget_total=5000, budget_shards=8)
    q = quote_with(quotes.QuotedLine(Line(Kind.CAMPAIGN, Funder.PLATFORM, Money(100),
                                          camp.campaign_id)))
    results = await race(db, 80, q)
    assert results.count("OK") == 48
    row, shards = await _sharded_totals(db, camp.campaign_id)
    assert (row, shards) == (0, [25] * 8)
    assert row + sum(shards) + 48 * 100 == 5000


async def test_a_sharded_release_goes_back_and_is_taken_again(db: Database) -> None:
    camp = await factories.campaign(db, discount_type="INSTANT_OFF", threshold=0, off=100,
                                    budget_total=400, budget_shards=4)
    q = quote_with(quotes.QuotedLine(Line(Kind.CAMPAIGN, Funder.PLATFORM, Money(100),
                                          camp.campaign_id)))
    results = await race(db, 5, q, prefix="shrel")
    assert sorted(results) == ["BUDGET_EXHAUSTED", "OK", "OK", "OK", "OK"]
    for _ in range(2):  # a second delivery changes nothing
        async with db.transaction() as s:
            await marketing.on_unpaid(s, order_id=f"shrel_{results.index('OK')}")
    assert await _sharded_totals(db, camp.campaign_id) == (100, [0] * 4)
    assert (await marketing.stats(db, campaign_id=camp.campaign_id)).remaining == 100
    assert await race(db, 2, q, prefix="shrel_again") in (["OK", "BUDGET_EXHAUSTED"],
                                                    ["BUDGET_EXHAUSTED", "OK"])
    assert await _sharded_totals(db, camp.campaign_id) == (0, [0] * 4)


async def test_a_paused_sharded_campaign_reserves_nothing(db: Database) -> None:
    camp = await factories.campaign(db, discount_type="INSTANT_OFF", threshold=0, off=100,
                                    budget_total=1000, budget_shards=4)
    await marketing.move_campaign(db, actor="tester", campaign_id=camp.campaign_id,
                                  action="pause")
    q = quote_with(quotes.QuotedLine(Line(Kind.CAMPAIGN, Funder.PLATFORM, Money(100),
                                          camp.campaign_id)))
    assert await race(db, 3, q) == ["CAMPAIGN_NOT_ACTIVE"] * 3
    assert await _sharded_totals(db, camp.campaign_id) == (0, [250] * 4)


@given(total=st.integers(min_value=0, max_value=10**12), shards=st.integers(1, 64))
def test_split_budget_is_exact(total: int, shards: int) -> None:
    parts = split_budget(total, shards)
    assert len(parts) == shards
    assert sum(parts) == total
    assert max(parts) - min(parts) <= 1
    assert min(parts) >= 0
