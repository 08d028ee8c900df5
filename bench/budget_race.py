"""`python -m bench.budget_race`: how often orders racing for a sharded campaign budget near
exhaustion deadlock, counted over many rounds.

Each round creates a campaign whose budget fits `--fits` orders, spread over `--shards`
counters, and runs `--orders` reservations at once (`marketing.reserve`, each in its own
transaction as an order's creation runs it), with no retry. It counts the reservations that
succeeded, those refused `BUDGET_EXHAUSTED`, the deadlock victims (InnoDB 1213 / 1205,
PostgreSQL 40P01 / 40001) and anything else, and checks the budget ends exact (every
counter at or above zero, the takes' sum equal to what left the budget). On MariaDB this is
the race `tests/marketing/test_budget_concurrency.py` runs once per test run, here `--rounds`
times in a row, so a deadlock seen once in a dozen test runs shows as a rate.

The database named by `--database-url` is emptied (its tables dropped and created again from
the models): its name must start with `bench_`. Figures only, no assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from fulema.core.clock import clock
from fulema.core.db import Database, StatementCounter, is_retryable
from fulema.core.errors import FulemaError
from fulema.core.money import Money
from fulema.marketing import quotes
from fulema.marketing import service as marketing
from fulema.marketing.domain import Funder, Kind, Line
from fulema.marketing.models import BudgetShard, Campaign, Redemption
from fulema.marketing.schemas import CampaignIn

OFF = 100


async def _round(db: Database, n: int, *, orders: int, fits: int, shards: int
                 ) -> dict[str, Any]:
    now = clock.now()
    camp = await marketing.create_campaign(db, actor="bench", body=CampaignIn(
        name=f"race {n}", funder="platform", discount_type="INSTANT_OFF", threshold=0, off=OFF,
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1),
        budget_total=fits * OFF, budget_shards=shards))
    q = quotes.Quote(merchant_id="mch_1", amount=Money(10_000), channel="wechat",
                     payer_id=None, store_id=None, expires_at=now + timedelta(minutes=5),
                     lines=(quotes.QuotedLine(Line(Kind.CAMPAIGN, Funder.PLATFORM, Money(OFF),
                                                   camp.campaign_id)),))

    async def one(i: int) -> str:
        try:
            async with db.transaction() as s:
                await marketing.reserve(s, order_id=f"race{n}_{i}", merchant_id="mch_1",
                                        quote=q)
        except FulemaError as exc:
            return exc.code.value
        except DBAPIError as exc:
            return "DEADLOCK" if is_retryable(exc) else f"DB:{type(exc.orig).__name__}"
        return "OK"

    statements = StatementCounter.total
    started = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(orders)))
    seconds = time.perf_counter() - started
    statements = StatementCounter.total - statements
    async with db.transaction() as s:
        row = await s.get(Campaign, camp.campaign_id)
        assert row is not None
        left = [x.fen for x in (await s.scalars(select(BudgetShard.remaining).where(
            BudgetShard.campaign_id == camp.campaign_id))).all()]
        taken = (await s.execute(select(func.count()).select_from(Redemption).where(
            Redemption.ref == camp.campaign_id))).scalar_one()
    counts: dict[str, int] = {}
    for r in results:
        counts[r] = counts.get(r, 0) + 1
    exact = (min([row.budget_remaining.fen, *left]) >= 0
             and row.budget_remaining.fen + sum(left) + taken * OFF == fits * OFF
             and taken == counts.get("OK", 0))
    return {"counts": counts, "exact": exact, "taken": taken, "seconds": round(seconds, 2),
            "statements_per_order": round(statements / orders, 2)}


async def run(url: str, *, rounds: int, orders: int, fits: int, shards: int, pool: int
              ) -> dict[str, Any]:
    import fulema.app  # noqa: F401 - every table on Base.metadata

    name = make_url(url).database or ""
    if not url.startswith("sqlite") and not name.startswith("bench_"):
        raise SystemExit(f"refusing to empty database {name!r}: its name must start bench_")
    db = Database(url, pool_size=pool)  # pool + as many overflow connections in flight
    try:
        await db.drop_all()
        await db.create_all()
        load_before = os.getloadavg()
        per_round = [await _round(db, n, orders=orders, fits=fits, shards=shards)
                     for n in range(rounds)]
    finally:
        await db.dispose()
    total: dict[str, int] = {}
    for r in per_round:
        for k, v in r["counts"].items():
            total[k] = total.get(k, 0) + v
    return {"db": db.dialect, "rounds": rounds, "orders_per_round": orders, "fits": fits,
            "shards": shards, "in_flight": 2 * pool, "total": total,
            "rounds_with_a_deadlock": sum(1 for r in per_round if r["counts"].get("DEADLOCK")),
            "rounds_not_exact": sum(1 for r in per_round if not r["exact"]),
            "rounds_not_all_taken": sum(1 for r in per_round if r["taken"] != fits),
            "statements_per_order": [r["statements_per_order"] for r in per_round],
            "seconds": [r["seconds"] for r in per_round],
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.budget_race", description=__doc__)
    p.add_argument("--database-url", required=True, help="a database named bench_* (emptied)")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--orders", type=int, default=200)
    p.add_argument("--fits", type=int, default=50, help="orders the budget covers")
    p.add_argument("--shards", type=int, default=10)
    p.add_argument("--pool", type=int, default=10,
                   help="connections (twice this in flight); 10 is the test's pool")
    a = p.parse_args(argv)
    result = asyncio.run(run(a.database_url, rounds=a.rounds, orders=a.orders, fits=a.fits,
                             shards=a.shards, pool=a.pool))
    for key, value in result.items():
        print(f"{key:<24} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
