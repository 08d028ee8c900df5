"""`python -m bench.risk_bench`: what risk control costs, measured in one run.

1. Decisions with the shipped rules (23 active, 5 of them the PBOC caps) in process: decisions/s
   and CPU microseconds per decision, the rule set alone (compiled, and interpreted as the
   baseline of the same run) and the whole `risk.service.decide` (merchant facts cached, as on
   the hot path; goal: at most 50 us of CPU), printed beside the goal and the load average.
2. The same with the counters in Redis (when one answers at --redis): decisions/s, CPU per
   decision on this side, and the round trips per decision (one EVALSHA).
3. Order creates/s through the merchant API (in process, SQLite, the bank channel's sandbox)
   with risk off and on, interleaved rounds on one database; the ratio is the figure (goal:
   at least 0.9).
4. The planted-pattern report on generated traffic (recall, false-positive rate, precision).

Keep it short: a few seconds per phase (`--quick` for less).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from fulema.core.clock import clock
from fulema.core.money import Money
from fulema.risk.counters import MemoryCounters, RedisCounters, redis_client
from fulema.risk.defaults import DEFAULT_RULES
from fulema.risk.domain import Outcome, RuleSet, compile_rule

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)


def _facts(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    ways = [("wechat", "QR_DYNAMIC"), ("alipay", "BARCODE"), ("bankpay", "BARCODE"),
            ("bankpay", "QR_STATIC"), ("unionpay", "QR_DYNAMIC")]
    out = []
    for i in range(n):
        channel, way = rng.choice(ways)
        out.append({"action": "pay", "amount": rng.randint(100, 200_000), "channel": channel,
                    "way_code": way, "merchant_id": f"m{rng.randint(1, 500)}",
                    "mcc": rng.choice(["5411", "5812", "7011"]),
                    "payer_id": f"p{rng.randint(1, 20_000)}", "terminal_id": f"t{i % 800}",
                    "client_ip": f"10.0.{i % 250}.{i % 200}", "hour": rng.randint(0, 23),
                    "weekday": 2, "merchant_age_days": rng.choice([3, 100, 400])})
    return out


def bench_rules(n: int) -> tuple[float, float, float, int]:
    """The rule set, counters and verdict, compiled and (the baseline of the same run) with
    the rules interpreted as closures, in alternated chunks of 500 decisions, each side with
    its own counters: on a shared machine the load moves by the second. Returns decisions/s
    and CPU us per decision compiled, CPU us interpreted, and how many were not ALLOW."""
    rs = RuleSet(version=1, rules=tuple(compile_rule(r) for r in DEFAULT_RULES))
    sides = {False: (rs.match, MemoryCounters()), True: (rs.match_interpreted, MemoryCounters())}
    facts = _facts(n)
    cpu = {False: 0.0, True: 0.0}
    wall = 0.0
    flagged = {False: 0, True: 0}
    for start in range(0, n, 500):
        for interpreted in (False, True):
            match, counters = sides[interpreted]
            outcomes = 0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for i in range(start, min(start + 500, n)):
                m = match(facts[i])
                values = counters.apply_sync(
                    [op for _r, op in m.pending], now=T0 + timedelta(milliseconds=i),
                    txn_key=f"k{i}", record=not any(r.outcome == Outcome.DENY for r in m.fired))
                outcomes += RuleSet.finish(m, values).outcome != Outcome.ALLOW
            cpu[interpreted] += time.process_time() - cpu0
            flagged[interpreted] += outcomes
            if not interpreted:
                wall += time.perf_counter() - wall0
    assert flagged[False] == flagged[True], "the compiled rules decided differently"
    return n / wall, cpu[False] / n * 1e6, cpu[True] / n * 1e6, flagged[False]


async def bench_redis(url: str, n: int) -> tuple[float, float, float] | None:
    client = redis_client(url)
    try:
        await client.ping()
    except Exception:
        await client.aclose()
        return None
    prefix = f"h7:bench:{secrets.token_hex(4)}:"
    store = RedisCounters(client, prefix=prefix)
    calls = 0
    script = store._script

    async def counting(**kw: Any) -> Any:
        nonlocal calls
        calls += 1
        return await script(**kw)

    store._script = counting  # type: ignore[assignment]
    rs = RuleSet(version=1, rules=tuple(compile_rule(r) for r in DEFAULT_RULES))
    facts = _facts(n, seed=2)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i, f in enumerate(facts):
        m = rs.match(f)
        values = await store.apply([op for _r, op in m.pending],
                                   now=T0 + timedelta(milliseconds=i), txn_key=f"k{i}",
                                   record=True) if m.pending else []
        RuleSet.finish(m, values)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=5000)]
    for i in range(0, len(keys), 1000):
        await client.delete(*keys[i:i + 1000])
    await client.aclose()
    return n / wall, cpu / n * 1e6, calls / n


GOAL_DECIDE_US = 50.0  # the goal: one decision with 20 active rules, CPU, in process
WARM_DECISIONS = 300
DECIDE_CHUNK = 500


async def bench_decide(n: int) -> tuple[float, float, float]:
    """The whole `risk.service.decide` on an in-memory database with a seeded merchant: its
    decisions/s and CPU us per decision, the median of chunks of 500 and the mean (this
    process's CPU: a DENY's write runs on aiosqlite's thread; the median, because on a shared
    machine another process's burst inflates a chunk's CPU time too). The first decisions
    are not timed, and they include a DENY: the first DENY's write compiles its INSERT and the
    first transaction's statements, a one-time cost of tens of milliseconds that, timed over
    1,000 decisions, read as 100 us more per decision."""
    from fulema.app import create_app  # noqa: F401 - registers every table
    from fulema.core.config import Settings
    from fulema.core.db import Database
    from fulema.merchants import service as merchants
    from fulema.risk import service as risk

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/risk.db"
        settings = Settings(environment="test", database_url=url, data_dir=tmp,
                            seed_demo=False, run_background=False)
        db = Database(url)
        await db.create_all()
        demo = await merchants.onboard_demo_merchant(db, settings=settings)
        facts = _facts(n + WARM_DECISIONS, seed=3)

        async def decide(i: int, f: dict[str, Any]) -> risk.Decision:
            return await risk.decide(db, settings=settings, merchant_id=demo.merchant_id,
                                     out_no=f"o{i}", amount=Money.of(min(f["amount"], 20_000)),
                                     channel=f["channel"], way_code=f["way_code"],
                                     payer_id=f["payer_id"], terminal_id=f["terminal_id"],
                                     client_ip=f["client_ip"])

        denied = await risk.decide(  # above the PBOC level B cap: DENY, written
            db, settings=settings, merchant_id=demo.merchant_id, out_no="warm-deny",
            amount=Money.of(500_001), channel="bankpay", way_code="BARCODE")
        assert not denied.allow, "the warm-up DENY was allowed"
        for i in range(WARM_DECISIONS):
            await decide(i, facts[i])
        gc.collect()  # the garbage of the bench's earlier phases is not this phase's to collect
        chunks: list[float] = []  # CPU us per decision, per chunk of DECIDE_CHUNK
        wall = 0.0
        for start in range(WARM_DECISIONS, WARM_DECISIONS + n, DECIDE_CHUNK):
            stop = min(start + DECIDE_CHUNK, WARM_DECISIONS + n)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for i in range(start, stop):
                await decide(i, facts[i])
            chunks.append((time.process_time() - cpu0) / (stop - start) * 1e6)
            wall += time.perf_counter() - wall0
        await db.dispose()
    return n / wall, statistics.median(chunks), statistics.fmean(chunks)


async def bench_creates(rounds: int, per_round: int
                        ) -> tuple[float, float, float, float]:
    """Order creates/s through the merchant API, risk off and on, interleaved."""
    import httpx
    import orjson
    from fastapi import FastAPI

    from fulema.app import create_app
    from fulema.core.config import Settings
    from fulema.core.db import Database
    from fulema.gateway.signing import sign_request
    from fulema.merchants import service as merchants

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/creates.db"
        base = Settings(environment="test", database_url=url, data_dir=tmp,
                        public_base_url="http://testserver",
                        seed_demo=False, run_background=False,
                        enabled_channels=["bankpay", "wechat"])
        db = Database(url)
        await db.create_all()
        demo = await merchants.onboard_demo_merchant(db, settings=base)
        clients = {}
        for on in (False, True):
            settings = base.model_copy(update={"risk_enabled": on})
            transport = httpx.ASGITransport(app=FastAPI())
            http = httpx.AsyncClient(transport=transport, base_url="http://testserver")
            app = create_app(settings, db=db, http=http)
            transport.app = app  # type: ignore[attr-defined]
            clients[on] = http
        n = 0

        async def create(http: httpx.AsyncClient) -> None:
            nonlocal n
            n += 1
            raw = orjson.dumps({"out_trade_no": f"B{n:08d}", "amount": 1250 + n % 7,
                                "subject": "bench", "way_code": "QR_DYNAMIC",
                                "channel": "bankpay", "payer_id": f"p{n % 300}"})
            signed = sign_request(app_id=demo.app_id, secret=demo.secret, method="POST",
                                  path="/api/v1/orders", body=raw, timestamp=clock.timestamp())
            resp = await http.post("/api/v1/orders", content=raw, headers=signed)
            if resp.status_code != 200:
                raise RuntimeError(resp.text)

        for on in (False, True):  # warm both paths
            for _ in range(20):
                await create(clients[on])
        # Small batches, alternated, many rounds: on a shared machine the load moves by the
        # second; the median of each side's batches is compared, by wall time and by this
        # process's CPU time (which other processes' load barely touches).
        wall: dict[bool, list[float]] = {False: [], True: []}
        cpu: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for on in (False, True):
                t0, c0 = time.perf_counter(), time.process_time()
                for _ in range(per_round):
                    await create(clients[on])
                wall[on].append(per_round / (time.perf_counter() - t0))
                cpu[on].append(per_round / (time.process_time() - c0))
        for http in clients.values():
            await http.aclose()
        await db.dispose()
    return (statistics.median(wall[False]), statistics.median(wall[True]),
            statistics.median(cpu[False]), statistics.median(cpu[True]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.risk_bench", description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--no-traffic", action="store_true", help="skip the planted-pattern report")
    a = ap.parse_args(argv)
    n = 5_000 if a.quick else 30_000
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f} at start")
    rps, cpu, icpu, flagged = bench_rules(n)
    print(f"rules in process ({len(DEFAULT_RULES)} active): {rps:,.0f} decisions/s, "
          f"{cpu:.1f} us CPU per decision ({flagged} of {n} not ALLOW); the same rules "
          f"interpreted: {icpu:.1f} us, compiled / interpreted {cpu / icpu:.2f}")
    drps, dcpu, dmean = asyncio.run(bench_decide(n // 5))
    load = os.getloadavg()
    print(f"risk.service.decide in process: {drps:,.0f} decisions/s, {dcpu:.1f} us CPU per "
          f"decision (median of chunks; mean {dmean:.1f}); goal <= {GOAL_DECIDE_US:.0f} us: "
          f"{'met' if dcpu <= GOAL_DECIDE_US else 'NOT met'}; the rules and counters alone "
          f"{cpu:.1f} us; load average {load[0]:.2f}")
    redis = asyncio.run(bench_redis(a.redis, n // 10))
    if redis is None:
        print(f"redis: nothing answers at {a.redis}; phase skipped")
    else:
        print(f"rules with counters in Redis: {redis[0]:,.0f} decisions/s, {redis[1]:.1f} us "
              f"CPU per decision here, {redis[2]:.2f} round trips per decision")
    off, on, coff, con = asyncio.run(bench_creates(8 if a.quick else 20, 20))
    print(f"order creates/s (API in process, SQLite, bankpay sandbox), median of alternated "
          f"batches: without risk {off:,.0f}, with risk {on:,.0f}, ratio {on / off:.2f}; "
          f"per CPU-second of this process: {coff:,.0f} vs {con:,.0f}, ratio {con / coff:.2f}")
    if not a.no_traffic:
        from fulema.risk.evaluation import evaluate, format_report
        from fulema.risk.traffic import generate

        size = dict(merchants=100, bad_per_pattern=5, days=14) if a.quick else {}
        print(format_report(evaluate(generate(**size), DEFAULT_RULES)))
    load = os.getloadavg()
    print(f"load average at end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
