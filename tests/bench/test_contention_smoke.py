"""The contention benchmark (`python -m bench.contention`): at tiny sizes on SQLite it must
report every process count and phase, compare them, and, for the budget that runs out, find
in the database that nothing was overspent. The overspend check itself is tested on every
database against a campaign whose redemptions do exceed its budget, so it can fail. Nothing
here asserts a timing: the figures belong to docs/scaling.md."""

from __future__ import annotations

from pathlib import Path

import orjson
from bench.contention import PHASES, QUICK, budget_check, render, run, seed_campaign
from sqlalchemy import update

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.ids import new_id
from fulema.core.money import Money
from fulema.marketing.models import BudgetShard, Redemption


async def test_tiny_run_on_sqlite_reports_each_process_count_and_overspends_nothing(
        tmp_path: Path) -> None:
    results = await run(plan=QUICK, db="sqlite", out_dir=tmp_path, log=False)
    written = orjson.loads(Path(results["json_path"]).read_bytes())  # noqa: ASYNC240 - a test
    assert written["stamp"] == results["stamp"]
    assert [r["processes"] for r in results["runs"]] == [1, 2]
    for r in results["runs"]:
        assert set(r["phases"]) == set(PHASES)
        assert len(r["pids"]) == r["processes"]
        assert r["background"] == "worker"  # the production shape, by default
        for ph in r["phases"].values():
            assert ph["ok"] > 0, ph
            assert ph["api_cpu_ms_per_op"] > 0
            assert ph["worker_cpu_ms_per_op"] > 0  # the worker handled the orders' events
            assert set(ph["latency_ms"]) >= {"p50", "p99"}
        # a budget that cannot run out: every best-discount order got the campaign's discount
        assert r["phases"]["best"]["discounted"] == r["phases"]["best"]["ok"]
        assert r["phases"]["create"]["discounted"] == 0  # no discount asked, none given
        b = r["budget_check"]
        assert b["redemptions"] >= r["phases"]["best"]["ok"]  # the warm-up's too
        assert b["redeemed_fen"] == b["redemptions"] * QUICK.off
        assert b["balanced"]
        assert b["overspent_fen"] == 0
        assert b["negative_counters"] == 0
        assert b["discounted_orders_match_redemptions"], b
    c = results["comparison"]
    assert (c["from"], c["to"]) == (1, 2)
    assert c["best"]["p99_ratio"] is not None
    assert c["goal_met"] in (True, False)
    e = results["exhaustion"]
    assert e["budget_fen"] == 8 * QUICK.off  # one order per shard
    assert e["ran_out"], e  # more orders than the budget covers were made
    assert e["discounted_orders"] == e["redemptions"] == 8
    assert e["remaining_fen"] == 0
    assert e["overspent_fen"] == 0
    assert e["negative_counters"] == 0
    assert e["balanced"]
    assert e["acknowledged_discounted"] == e["discounted_orders"]  # the answers agree
    assert "overspent: 0" in render(results)


async def test_the_overspend_check_finds_redemptions_beyond_the_budget(db: Database) -> None:
    campaign = await seed_campaign(db.url, name="overspent", budget=80, shards=8, off=10)
    now = clock.now()
    async with db.transaction() as s:
        # every shard spent properly (8 x 10 fen), then two more redemptions from nowhere
        await s.execute(update(BudgetShard).where(BudgetShard.campaign_id == campaign)
                        .values(remaining=Money(0)))
        for _ in range(10):
            s.add(Redemption(id=new_id("rdm"), order_id=new_id("ord"), merchant_id="m",
                             kind="campaign", ref=campaign, funder="platform",
                             amount=Money(10), refunded=Money(0), state="RESERVED",
                             overrun=False, day=now.date().isoformat(), created_at=now,
                             updated_at=now, detail={}))
        # a released one holds no budget and is not counted
        s.add(Redemption(id=new_id("rdm"), order_id=new_id("ord"), merchant_id="m",
                         kind="campaign", ref=campaign, funder="platform", amount=Money(10),
                         refunded=Money(0), state="RELEASED", overrun=False,
                         day=now.date().isoformat(), created_at=now, updated_at=now, detail={}))
    check = await budget_check(db.url, campaign, ["nothing"])
    assert check["budget_fen"] == 80
    assert (check["redemptions"], check["redeemed_fen"]) == (10, 100)
    assert check["overspent_fen"] == 20
    assert check["balanced"] is False
    assert check["remaining_fen"] == 0
    assert check["negative_counters"] == 0
