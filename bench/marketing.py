"""`python -m bench.marketing`: what a discount costs on the order path, and whether one
campaign's budget row serialises its orders.

One process, the real app over an in-process ASGI transport with the sandbox channels mounted
(the same for every phase, so the ratios compare like with like), on PostgreSQL (the
FULEMA_TEST_POSTGRES_URL database, `--db postgres`) or a SQLite file. Phases, each a closed
loop of `--concurrency` signed merchants for `--seconds`:

1. `plain`      POST /api/v1/orders without a discount (the baseline of this run);
2. `discounted` POST /api/v1/orders with `"discount": "best"`: one request chooses and
                reserves the discount (a 立减 campaign with a budget that never runs out):
                orders/s against `plain` (goal: at least 0.8x);
3. `quoted`     the older path, POST /api/v1/marketing/quote then POST /api/v1/orders with the
                quote (two signed requests), for comparison;
4. `hot_plain` and `hot_campaign`: plain and best-discount orders at `--payers` (200)
   concurrent payers, every discounted order taking budget from ONE campaign row: if that row
   serialised the orders, `hot_campaign` would fall far below `hot_plain`;
5. `hot_sharded`: the same 200 payers on ONE campaign whose budget is spread over
   `--shards` counters (docs/marketing.md, "Sharded budgets").

Each phase reports the load average before and after it (the machine is shared) and the SQL
statements per order. `--interleave N` runs phases 1-3 N times, alternated, and merges them
(the load of a shared machine moves within seconds); `--profile FILE` runs cProfile over the
discounted phase.

The rate limits and load shedding are off (`RateLimitSection(enabled=False)`): at 200 closed-loop
clients on a small machine they would answer OVERLOADED and measure the shedding, not the
order path.

Prints one JSON document; never asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import secrets
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

from fulema.app import create_app
from fulema.core.channel_settings import RateLimitSection
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database, StatementCounter
from fulema.gateway.signing import sign_request
from fulema.marketing import service as marketing
from fulema.marketing.schemas import CampaignIn
from fulema.merchants import service as merchants


async def _build(url: str, tmp: Path) -> tuple[FastAPI, httpx.AsyncClient, Database]:
    import fulema.app  # noqa: F401 - every table on Base.metadata

    settings = Settings(environment="test", public_base_url="http://bench", data_dir=tmp,
                        database_url=url, run_background=False, seed_demo=False,
                        enabled_channels=["bankpay"],
                        ratelimit=RateLimitSection(enabled=False))
    db = Database(url, pool_size=20)
    await db.drop_all()
    await db.create_all()
    transport = httpx.ASGITransport(app=FastAPI())
    http = httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60)
    app = create_app(settings, db=db, http=http)
    transport.app = app
    await merchants.onboard_demo_merchant(db, settings=settings)
    return app, http, db


async def _call(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    raw = orjson.dumps(body)
    headers = sign_request(app_id=merchants.DEMO_APP_ID, secret=merchants.DEMO_SECRET,
                           method="POST", path=path, body=raw, timestamp=clock.timestamp())
    resp = await http.post(path, content=raw, headers=headers)
    doc: dict[str, Any] = resp.json()
    return doc


PLAIN, BEST, QUOTED = "plain", "best", "quoted"


async def _loop(http: httpx.AsyncClient, *, mode: str, concurrency: int,
                seconds: float) -> dict[str, Any]:
    """`mode`: PLAIN (no discount), BEST (`"discount": "best"`, one request) or QUOTED (a quote,
    then the order with it: two requests). An order counts if it is PAYING and, unless plain,
    discounted. Statements per order are counted (core.db.StatementCounter)."""
    ok = errors = 0
    codes: dict[str, int] = {}
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal ok, errors
        payer = f"payer{w:04d}"
        while time.perf_counter() < stop:
            body: dict[str, Any] = {"out_trade_no": f"B{secrets.token_hex(8)}", "amount": 1250,
                                    "subject": "bench", "way_code": "QR_DYNAMIC",
                                    "channel": "bankpay", "payer_id": payer}
            if mode == QUOTED:
                q = await _call(http, "/api/v1/marketing/quote",
                                {"amount": 1250, "channel": "bankpay", "payer_id": payer})
                body["quote"] = q.get("quote_id")
            elif mode == BEST:
                body["discount"] = "best"
            doc = await _call(http, "/api/v1/orders", body)
            if doc.get("status") == "PAYING" and (mode == PLAIN
                                                  or doc.get("discount_amount", 0) > 0):
                ok += 1
            else:
                errors += 1
                code = str(doc.get("code", doc.get("status")))
                codes[code] = codes.get(code, 0) + 1

    load_before = os.getloadavg()
    statements = StatementCounter.total
    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    statements = StatementCounter.total - statements
    return {"mode": mode, "orders": ok, "errors": errors, "error_codes": codes,
            "seconds": round(elapsed, 2), "orders_per_s": round(ok / elapsed, 1),
            "concurrency": concurrency,
            "statements_per_order": round(statements / max(1, ok + errors), 1),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()]}


async def _campaign(db: Database, name: str, shards: int) -> str:
    now = clock.now()
    camp = await marketing.create_campaign(db, actor="bench", body=CampaignIn(
        name=name, funder="platform", discount_type="INSTANT_OFF", off=50,
        starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=1),
        budget_total=10**12, budget_shards=shards))
    return camp.campaign_id


async def measure(*, url: str, seconds: float, concurrency: int, payers: int,
                  shards: int = 8, profile: Path | None = None,
                  interleave: int = 1) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        _app, http, db = await _build(url, Path(tmp))
        try:
            camp = await _campaign(db, "bench 立减", 1)
            await _loop(http, mode=BEST, concurrency=2, seconds=min(1.0, seconds))  # warm
            await _loop(http, mode=QUOTED, concurrency=2, seconds=min(0.5, seconds))
            out: dict[str, Any] = {"db": db.dialect, "campaign_id": camp, "shards": shards}
            rounds: dict[str, list[dict[str, Any]]] = {PLAIN: [], BEST: [], QUOTED: []}
            profiler = cProfile.Profile() if profile is not None else None
            for _ in range(max(1, interleave)):  # alternated: the machine's load moves
                for mode in (PLAIN, BEST, QUOTED):
                    if profiler is not None and mode == BEST:
                        profiler.enable()
                    rounds[mode].append(await _loop(http, mode=mode, concurrency=concurrency,
                                                    seconds=seconds))
                    if profiler is not None and mode == BEST:
                        profiler.disable()
            if profiler is not None and profile is not None:
                profiler.dump_stats(profile)
            out["plain"], out["discounted"], out["quoted"] = (
                _merged(rounds[m]) for m in (PLAIN, BEST, QUOTED))
            out["ratio_discounted_vs_plain_per_round"] = [
                round(b["orders_per_s"] / (p["orders_per_s"] or 1.0), 2)
                for p, b in zip(rounds[PLAIN], rounds[BEST], strict=True)]
            out["hot_plain"] = await _loop(http, mode=PLAIN, concurrency=payers,
                                           seconds=seconds)
            out["hot_campaign"] = await _loop(http, mode=BEST, concurrency=payers,
                                              seconds=seconds)
            # the same discount from a sharded campaign, the only one left running
            await marketing.move_campaign(db, actor="bench", campaign_id=camp, action="end")
            sharded = await _campaign(db, "bench 立减 sharded", shards)
            out["hot_sharded"] = await _loop(http, mode=BEST, concurrency=payers,
                                             seconds=seconds)
            base = out["plain"]["orders_per_s"] or 1.0
            hot_base = out["hot_plain"]["orders_per_s"] or 1.0
            out["ratio_discounted_vs_plain"] = round(out["discounted"]["orders_per_s"] / base, 2)
            out["ratio_quoted_vs_plain"] = round(out["quoted"]["orders_per_s"] / base, 2)
            out["goal_met"] = out["ratio_discounted_vs_plain"] >= 0.8
            out["ratio_hot_campaign_vs_hot_plain"] = round(
                out["hot_campaign"]["orders_per_s"] / hot_base, 2)
            out["ratio_hot_sharded_vs_hot_plain"] = round(
                out["hot_sharded"]["orders_per_s"] / hot_base, 2)
            for key, cid in (("campaign_budget_spent_fen", camp),
                             ("sharded_budget_spent_fen", sharded)):
                stats = await marketing.stats(db, campaign_id=cid)
                out[key] = 10**12 - stats.remaining
            return out
        finally:
            await http.aclose()
            await db.dispose()


def _merged(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one phase as one: orders over the seconds they took together."""
    if len(runs) == 1:
        return runs[0]
    orders = sum(r["orders"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    codes: dict[str, int] = {}
    for r in runs:
        for code, n in r["error_codes"].items():
            codes[code] = codes.get(code, 0) + n
    return {**runs[-1], "orders": orders, "errors": sum(r["errors"] for r in runs),
            "error_codes": codes, "seconds": round(seconds, 2),
            "orders_per_s": round(orders / seconds, 1), "rounds": len(runs),
            "statements_per_order": round(sum(r["statements_per_order"] * (r["orders"]
                                                                          + r["errors"])
                                              for r in runs)
                                          / max(1, sum(r["orders"] + r["errors"] for r in runs)),
                                          1),
            "loadavg_before": runs[0]["loadavg_before"]}


def _print_profile(path: Path, top: int = 25) -> None:
    stream = io.StringIO()
    pstats.Stats(str(path), stream=stream).sort_stats("tottime").print_stats(top)
    print(stream.getvalue(), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.marketing", description=__doc__)
    p.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--payers", type=int, default=200)
    p.add_argument("--shards", type=int, default=8, help="budget counters of hot_sharded")
    p.add_argument("--interleave", type=int, default=1,
                   help="run plain, discounted and quoted this many times, alternated, "
                        "each --seconds long (a shared machine's load moves during a run)")
    p.add_argument("--profile", type=Path, default=None,
                   help="cProfile the discounted phase into this file; top functions by own "
                        "time go to stderr")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    if a.db == "postgres":
        url = os.environ.get("FULEMA_TEST_POSTGRES_URL", "")
        if not url:
            print("set FULEMA_TEST_POSTGRES_URL to a database this benchmark may wipe",
                  file=sys.stderr)
            return 2
    else:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db"
    result = asyncio.run(measure(url=url, seconds=a.seconds, concurrency=a.concurrency,
                                 payers=a.payers, shards=a.shards, profile=a.profile,
                                 interleave=a.interleave))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if a.profile is not None:
        _print_profile(a.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
