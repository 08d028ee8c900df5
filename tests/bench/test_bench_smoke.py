"""The benchmark harness in its quick mode: it must produce well-formed results and lose no
order. Nothing here asserts a timing: the figures belong to docs/performance.md, not to CI.

The SQLite run always happens (a few seconds: the phases are cut to half a second). The
PostgreSQL run needs FULEMA_TEST_POSTGRES_URL (CI sets it), psql and pgbench, and is skipped
with the reason otherwise.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from bench.baselines import find_pgbench
from bench.harness import Options, run
from bench.loadgen import percentile, summarize
from bench.receiver import app as receiver_app
from bench.scenarios import QUICK

from bench import dbstats
from fulema.gateway.signing import notification_signature

PHASES = {"ping", "create", "create_fixed_rate", "cycle", "barcode", "query", "burst_10x"}
TINY = QUICK.__class__(**{**QUICK.__dict__, "ping": 0.5, "create": 0.8, "fixed": 0.5,
                          "cycle": 1.0, "barcode": 0.5, "query": 0.5, "burst": 0.5})


def check_well_formed(results: dict[str, Any], json_path: Path) -> None:
    assert json_path.exists()
    assert orjson.loads(json_path.read_bytes())["stamp"] == results["stamp"]
    assert results["configs"], "no server configuration was measured"
    for cfg in results["configs"]:
        assert set(cfg["phases"]) >= PHASES, set(cfg["phases"])
        for name, ph in cfg["phases"].items():
            assert ph["ok"] + ph["errors"] == ph["sent"] or name == "burst_10x", (name, ph)
            assert ph["throughput"] >= 0
            assert set(ph["latency_ms"]) >= {"p50", "p95", "p99"}
            assert ph["generator_cpu_util"] >= 0
        for name in ("create", "cycle", "barcode", "query"):
            assert cfg["phases"][name]["ok"] > 0, (name, cfg["phases"][name])
        burst = cfg["phases"]["burst_10x"]["lost_check"]
        assert burst["lost"] == 0, burst
        assert burst["duplicates"] == 0, burst
        assert burst["acknowledged"] + burst["unresolved_after_retry"] >= 1
        assert next(g["goal"] for g in cfg["goals"]) == "order create / pgbench TPS"
        assert all(g["met"] in (True, False, None) for g in cfg["goals"])
    counted = results["statements_per_op_counted"]
    assert counted["create"] > 0
    assert counted["cycle"] > counted["create"]


async def test_quick_mode_on_sqlite_produces_results_and_loses_nothing(tmp_path: Path) -> None:
    results = await run(Options(quick=True, db="sqlite", workers=[1], profile=False,
                                out_dir=tmp_path, log=False, plan=TINY))
    check_well_formed(results, Path(results["json_path"]))
    assert results["configs"][0]["label"] == "uvicorn x1"
    assert results["receiver_stats"]["bad_signature"] == 0
    assert results["receiver_stats"]["payments"] >= results["configs"][0]["phases"]["cycle"]["ok"]


def _postgres_reason() -> str | None:
    if not os.environ.get("FULEMA_TEST_POSTGRES_URL"):
        return "FULEMA_TEST_POSTGRES_URL is not set: no PostgreSQL run"
    if find_pgbench() is None:
        return "pgbench is not installed"
    return dbstats.postgres_available()


@pytest.mark.postgres
@pytest.mark.skipif(_postgres_reason() is not None, reason=str(_postgres_reason()))
async def test_quick_mode_on_postgres_has_baselines_and_db_counters(tmp_path: Path) -> None:
    plan = TINY.__class__(**{**TINY.__dict__, "pgbench": 2})
    results = await run(Options(quick=True, db="postgres", workers=[1], profile=False,
                                out_dir=tmp_path, log=False, plan=plan))
    check_well_formed(results, Path(results["json_path"]))
    assert results["baselines"]["pgbench"]["tps"] > 0
    assert results["configs"][0]["phases"]["create"]["db_per_op"]["xact_commit"] >= 0


# ----------------------------------------------------------------- the parts, good and bad input

def test_percentiles_are_values_requests_really_saw() -> None:
    assert percentile([], 99) is None
    values = [i / 1000 for i in range(1, 101)]
    assert percentile(values, 50) == 0.05
    assert percentile(values, 99) == 0.099
    assert percentile([0.5], 99) == 0.5
    assert summarize([]) == {"p50": None, "p95": None, "p99": None, "max": None, "mean": None}


def test_lost_check_catches_a_missing_order_a_wrong_id_and_a_duplicate() -> None:
    result = {"sent": 4, "records": [{"no": "X00000000", "id": "ord_a"},
                                     {"no": "X00000001", "id": "ord_b"},
                                     {"no": "X00000002", "id": "ord_c"}],
              "unresolved": [3]}
    found = {"X00000000": ["ord_a"], "X00000001": ["ord_other"],
             "X00000002": ["ord_c", "ord_c2"], "X00000003": ["ord_d"]}
    check = dbstats.lost_check(result, found, "X")
    assert check["lost"] == 2  # the wrong id and the duplicated one are not "exactly once"
    assert check["duplicates"] == 1
    assert check["unresolved_after_retry"] == 1
    assert check["unresolved_in_db"] == 1
    clean = dbstats.lost_check({"sent": 1, "records": [{"no": "X00000000", "id": "ord_a"}]},
                               {"X00000000": ["ord_a"]}, "X")
    assert clean["lost"] == clean["duplicates"] == 0


async def test_receiver_acknowledges_signed_notifications_and_refuses_forged_ones() -> None:
    transport = httpx.ASGITransport(app=receiver_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as client:
        body = orjson.dumps({"type": "payment.succeeded", "data": {"order_id": "ord_smoke1"}})
        ts = int(time.time())
        good = {"Fulema-Signature": f"t={ts},v1={notification_signature('demo-secret-change-me', ts, body)}"}
        forged = {"Fulema-Signature": f"t={ts},v1={'0' * 64}"}
        stale = {"Fulema-Signature":
                 f"t={ts - 3600},v1={notification_signature('demo-secret-change-me', ts - 3600, body)}"}
        assert (await client.post("/notify", content=body)).status_code == 400  # unsigned
        assert (await client.post("/notify", content=body, headers=forged)).status_code == 400
        assert (await client.post("/notify", content=body, headers=stale)).status_code == 400
        missing = await client.get("/wait/ord_smoke1?timeout=0.05")
        assert missing.status_code == 404
        ok = await client.post("/notify", content=body, headers=good)
        assert ok.status_code == 200
        assert ok.text == "SUCCESS"
        assert (await client.get("/wait/ord_smoke1?timeout=1")).status_code == 200
        again = await client.post("/notify", content=body, headers=good)  # retried delivery
        assert again.text == "SUCCESS"
        stats = (await client.get("/stats")).json()
        assert stats["duplicates"] >= 1
        assert stats["bad_signature"] >= 3


async def test_marketing_bench_runs_and_spends_the_campaign(tmp_path: Path) -> None:
    """The discount benchmark (bench/marketing.py) in a tiny run on SQLite: every phase made
    orders, the discounted ones took budget from the one campaign; no timing is asserted."""
    from bench.marketing import measure

    out = await measure(url=f"sqlite+aiosqlite:///{tmp_path / 'b.db'}", seconds=0.5,
                        concurrency=2, payers=4, interleave=2)
    for phase in ("plain", "discounted", "quoted", "hot_plain", "hot_campaign", "hot_sharded"):
        assert out[phase]["orders"] > 0, out[phase]
        assert out[phase]["errors"] == 0, out[phase]
    discounted = (out["discounted"]["orders"] + out["quoted"]["orders"]
                  + out["hot_campaign"]["orders"])
    assert out["campaign_budget_spent_fen"] >= 50 * discounted
    assert out["sharded_budget_spent_fen"] >= 50 * out["hot_sharded"]["orders"]
    assert isinstance(out["goal_met"], bool)
    assert out["discounted"]["mode"] == "best"  # one request per discounted order
    assert out["plain"]["rounds"] == 2  # alternated with the discounted runs, then merged
    assert len(out["ratio_discounted_vs_plain_per_round"]) == 2
    assert out["discounted"]["statements_per_order"] > out["plain"]["statements_per_order"]
