"""Points: earn once per order, redeem first-to-expire, hold/release, claw back on refunds,
expiry; and the invariant balance == sum(lots) == sum(movements) after any sequence of them."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.points import domain
from fulema.points import service as points
from fulema.points.models import PointAccount, PointLot, PointMovement
from tests.conftest import open_database

KEY = "wechat:payer-1"


async def sums(db: Database, key: str = KEY) -> tuple[int, int, int]:
    async with db.transaction() as s:
        acct = (await s.scalars(select(PointAccount).where(PointAccount.payer_key == key))).one()
        lots = (await s.execute(select(func.coalesce(func.sum(PointLot.remaining), 0)).where(
            PointLot.account_id == acct.id))).scalar_one()
        moves = (await s.execute(select(func.coalesce(func.sum(PointMovement.points), 0)).where(
            PointMovement.account_id == acct.id))).scalar_one()
        return acct.balance, int(lots), int(moves)


def test_earned_rounds_down() -> None:
    assert domain.earned(paid_fen=1299, per_yuan=1) == 12
    assert domain.earned(paid_fen=1299, per_yuan=2, multiplier=3) == 77
    assert domain.earned(paid_fen=99, per_yuan=1) == 0


def test_claw_back_is_proportional_and_complete() -> None:
    assert domain.claw_back_due(points=10, amount_fen=1000, refunded_fen=333, clawed=0) == 3
    assert domain.claw_back_due(points=10, amount_fen=1000, refunded_fen=666, clawed=3) == 3
    assert domain.claw_back_due(points=10, amount_fen=1000, refunded_fen=1000, clawed=6) == 4


async def test_earn_is_once_per_order_and_redeem_takes_first_to_expire(
        db: Database, settings: Settings) -> None:
    async with db.transaction() as s:
        assert await points.earn(s, settings, order_id="ord1", key=KEY, paid_fen=5000,
                                 amount_fen=5000) == 50
    async with db.transaction() as s:
        assert await points.earn(s, settings, order_id="ord1", key=KEY, paid_fen=5000,
                                 amount_fen=5000) == 0  # the same payment again
    clock.advance(timedelta(days=10))
    async with db.transaction() as s:
        await points.earn(s, settings, order_id="ord2", key=KEY, paid_fen=3000, amount_fen=3000)
    assert await sums(db) == (80, 80, 80)
    async with db.transaction() as s:
        await points.hold(s, order_id="ord3", key=KEY, points=60)
    statement = await points.statement(db, key=KEY)
    # the older lot (50, expiring first) went whole; 10 came from the newer one
    assert [(lot.points, lot.remaining) for lot in statement.lots] == [(30, 20)]
    async with db.transaction() as s:
        await points.release_hold(s, order_id="ord3")
        await points.release_hold(s, order_id="ord3")  # twice changes nothing
    assert await sums(db) == (80, 80, 80)
    with pytest.raises(FulemaError) as e:
        async with db.transaction() as s:
            await points.hold(s, order_id="ord4", key=KEY, points=81)
    assert e.value.code == ErrorCode.POINTS_INSUFFICIENT
    assert await sums(db) == (80, 80, 80)  # nothing half-written


async def test_claw_back_expiry_and_operator_actions(db: Database, settings: Settings) -> None:
    async with db.transaction() as s:
        await points.earn(s, settings, order_id="o1", key=KEY, paid_fen=10000,
                          amount_fen=10000)
    async with db.transaction() as s:
        assert await points.claw_back(s, order_id="o1", refunded_fen=2500, ref="r1") == 25
        assert await points.claw_back(s, order_id="o1", refunded_fen=2500, ref="r1") == 0
    view = await points.adjust(db, settings, actor="op", key=KEY, points=-5, reason="fix")
    assert view.balance == 70
    with pytest.raises(FulemaError) as e:
        await points.redeem(db, actor="op", key=KEY, points=71, reason="gift")
    assert e.value.code == ErrorCode.POINTS_INSUFFICIENT
    with pytest.raises(FulemaError) as e:
        await points.adjust(db, settings, actor="op", key=KEY, points=0, reason="nothing")
    assert e.value.code == ErrorCode.INVALID_POINTS
    view = await points.redeem(db, actor="op", key=KEY, points=20, reason="gift")
    assert view.balance == 50
    clock.advance(timedelta(days=settings.points_validity_days + 1))
    assert await points.expire_lots(db) == 1
    assert await sums(db) == (0, 0, 0)
    kinds = [m.kind for m in (await points.statement(db, key=KEY)).movements]
    assert kinds == ["EARN", "CLAWBACK", "ADJUST", "REDEEM", "EXPIRE"]
    balances = [m.balance_after for m in (await points.statement(db, key=KEY)).movements]
    assert balances == [100, 75, 70, 50, 0]


ops = st.lists(st.tuples(st.sampled_from(["earn", "hold", "release", "consume", "claw",
                                          "adjust", "redeem", "expire", "return"]),
                         st.integers(1, 5000)), min_size=1, max_size=25)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=ops)
def test_balance_equals_lots_equals_movements(steps: list[tuple[str, int]]) -> None:
    """Whatever happens to an account, its balance is the sum of its lots and of its
    statement's movements."""
    conf = Settings(environment="test", run_background=False, seed_demo=False,
                    points_validity_days=30)

    async def run(tmp: Path) -> None:
        db = await open_database("sqlite", tmp)
        clock.reset()
        try:
            await points.adjust(db, conf, actor="op", key=KEY, points=100, reason="start")
            holds: list[str] = ["h-none"]
            for i, (op, n) in enumerate(steps):
                held = holds[n % len(holds)]
                try:
                    async with db.transaction() as s:
                        if op == "earn":
                            await points.earn(s, conf, order_id=f"e{i}", key=KEY, paid_fen=n,
                                              amount_fen=n)
                        elif op == "hold":
                            await points.hold(s, order_id=f"h{i}", key=KEY, points=n % 200)
                            holds.append(f"h{i}")
                        elif op == "release":
                            await points.release_hold(s, order_id=held)
                        elif op == "consume":
                            await points.consume_hold(s, order_id=held)
                        elif op == "return":
                            await points.return_points(s, conf, order_id=held,
                                                       points=n % 50, ref=f"r{i}")
                        elif op == "claw":
                            await points.claw_back(s, order_id=f"e{n % i if i else 0}",
                                                   refunded_fen=n, ref=f"c{i}")
                        elif op == "expire":
                            clock.advance(timedelta(days=n % 40))
                    if op == "expire":
                        await points.expire_lots(db)
                    elif op == "adjust":
                        await points.adjust(db, conf, actor="op", key=KEY, points=n - 2500,
                                            reason="x")
                    elif op == "redeem":
                        await points.redeem(db, actor="op", key=KEY, points=n % 300 + 1,
                                            reason="x")
                except FulemaError:
                    pass
                balance, lots, moves = await sums(db)
                assert balance == lots == moves >= 0
        finally:
            clock.reset()
            await db.dispose()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp)))
