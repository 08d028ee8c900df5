"""What one order create costs the database *including the background rounds it causes*.

    python -m bench.hidden [--db URL] [--seconds 6] [--concurrency 8] [--publish-rate 200]
    python -m bench.hidden --cycle-rate 10     # full payment cycles, open loop

`bench.calibrate` counts the statements of the request itself with the background jobs off.
But every create publishes an event, and every commit that publishes wakes the event
dispatcher (sequencing, one claim and one position update per consumer behind) and the
notification loop (a due-notification query): work the request causes, done after it answers.
This runs the real app in process with its real background loops (`ops.worker`), drives
order creates closed-loop through `httpx.ASGITransport` for a fixed time, and divides the
statements and transactions the process sent by the creates made. Counts, unlike CPU time on a
shared machine, do not move with the load of other work; they do move with the rate (that is
the point of coalescing), so the rate is printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from sqlalchemy import event

from bench.scenarios import DEMO_APP_ID, DEMO_SECRET, PAYER, order_body
from fulema.core.channel_settings import RateLimitSection
from fulema.core.config import Settings
from fulema.core.db import Database, StatementCounter
from fulema.gateway.signing import sign_request

BASE = "http://bench"


async def measure(database_url: str, *, seconds: float, concurrency: int,
                  publish_rate: float = 0.0) -> dict[str, Any]:
    """Creates closed-loop; or with `publish_rate`, bare events published at that rate (one
    small transaction each, topic `bench.tick`, which every consumer must still pass over):
    the background's cost per event at a rate a starved machine cannot reach with creates."""
    from fulema.app import create_app
    from fulema.merchants.service import onboard_demo_merchant
    from fulema.ops.worker import background_tasks

    settings = Settings(database_url=database_url, public_base_url=BASE,
                        data_dir=Path(tempfile.mkdtemp(prefix="fulema-hidden-")),
                        enabled_channels=["bankpay"], run_background=False, seed_demo=False,
                        environment="development", ratelimit=RateLimitSection(enabled=False))
    db = Database(database_url)
    commits = [0]

    @event.listens_for(db.engine.sync_engine, "commit")
    def _commit(*_a: Any) -> None:
        commits[0] += 1

    transport = httpx.ASGITransport(app=FastAPI())
    http = httpx.AsyncClient(transport=transport, base_url=BASE)
    app = create_app(settings, db=db, http=http)
    db.notify_other_processes = False  # one process: it wakes itself
    transport.app = app
    await onboard_demo_merchant(db, settings=settings)
    tag = f"H{int(time.time() * 1000):x}"

    async def create(no: str) -> None:
        raw = orjson.dumps(order_body(no))
        headers = sign_request(app_id=DEMO_APP_ID, secret=DEMO_SECRET, method="POST",
                               path="/api/v1/orders", body=raw, timestamp=int(time.time()))
        (await http.post("/api/v1/orders", content=raw, headers=headers)).raise_for_status()

    for i in range(10):  # warm: caches, the risk rule set, the consumers' registration
        await create(f"{tag}w{i:03d}")
    tasks = background_tasks(app)
    await asyncio.sleep(1.0)
    counter = iter(range(1_000_000))
    deadline = time.monotonic() + seconds
    s0, c0, t0, cpu0 = StatementCounter.total, commits[0], time.monotonic(), time.process_time()

    async def worker() -> int:
        done = 0
        for i in counter:
            if time.monotonic() >= deadline:
                return done
            await create(f"{tag}c{i:06d}")
            done += 1
        return done

    async def ticker(k: int) -> int:
        from fulema.core.events import publish_now

        n, rate = 0, publish_rate / concurrency
        while time.monotonic() < deadline:
            async with db.transaction() as s:
                await publish_now(s, "bench.tick", {"n": n, "k": k})
            n += 1
            await asyncio.sleep(max(0.0, t0 + n / rate - time.monotonic()))
        return n

    if publish_rate:  # `concurrency` publishers share the rate
        ops = sum(await asyncio.gather(*[ticker(k) for k in range(concurrency)]))
    else:
        ops = sum(await asyncio.gather(*[worker() for _ in range(concurrency)]))
    await asyncio.sleep(0.5)  # the rounds the last creates caused
    wall = time.monotonic() - t0
    out = {"what": "events" if publish_rate else "creates", "ops": ops, "rate_per_s": round(ops / wall, 1),
           "statements_per_create": round((StatementCounter.total - s0) / ops, 2),
           "transactions_per_create": round((commits[0] - c0) / ops, 2),
           "process_cpu_ms_per_create": round((time.process_time() - cpu0) * 1000 / ops, 2)}
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    await http.aclose()
    await db.dispose()
    return out


async def measure_cycles(database_url: str, *, seconds: float, rate: float) -> dict[str, Any]:
    """Full payment cycles offered open loop at `rate` per second (signed create, the payer
    scans in the bank channel's sandbox, its callback lands), with the app's real background
    loops delivering `payment.succeeded` to every consumer: what a payment costs the database
    at the rate most hours have, where each consumer's rounds are not yet shared by many
    events. The last events are given two seconds to be delivered before counting stops."""
    from bench.calibrate import in_process
    from fulema.ops.worker import background_tasks

    async with in_process(database_url, Path(tempfile.mkdtemp(prefix="fulema-hidden-"))) as h:
        commits = [0]

        @event.listens_for(h.db.engine.sync_engine, "commit")
        def _commit(*_a: Any) -> None:
            commits[0] += 1

        tag = f"Y{int(time.time() * 1000):x}"

        async def cycle(no: str) -> None:
            order = await h.call("POST", "/api/v1/orders", order_body(no))
            (await h.http.post("/sandbox/bankpay/wallet/scan", json={
                "code_url": order["code_url"], "payer_id": PAYER})).raise_for_status()

        await h.pay([f"{tag}w{i:03d}" for i in range(5)])  # warm, drained by hand
        tasks = background_tasks(h.app)
        await asyncio.sleep(1.0)
        s0, c0, cpu0, t0 = StatementCounter.total, commits[0], time.process_time(), time.monotonic()
        n = 0
        running: list[asyncio.Task[None]] = []
        while time.monotonic() - t0 < seconds:
            running.append(asyncio.create_task(cycle(f"{tag}c{n:06d}")))
            n += 1
            await asyncio.sleep(max(0.0, t0 + n / rate - time.monotonic()))
        await asyncio.gather(*running)
        await asyncio.sleep(2.0)  # the consumers' last rounds
        out = {"what": "cycles", "ops": n, "rate_per_s": round(rate, 1),
               "statements_per_create": round((StatementCounter.total - s0) / n, 2),
               "transactions_per_create": round((commits[0] - c0) / n, 2),
               "process_cpu_ms_per_create": round((time.process_time() - cpu0) * 1000 / n, 2)}
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        return out


async def main_async(a: argparse.Namespace) -> None:
    if a.db is None:
        from bench import dbstats

        dbstats.recreate_database(dbstats.BENCH_DB)
        a.db = dbstats.pg_url(dbstats.BENCH_DB)
        await dbstats.migrate(a.db)
    rows = []
    for rnd in range(a.rounds):
        if a.cycle_rate:
            r = await measure_cycles(a.db, seconds=a.seconds, rate=a.cycle_rate)
        else:
            r = await measure(a.db, seconds=a.seconds, concurrency=a.concurrency,
                              publish_rate=a.publish_rate)
        r["round"] = rnd
        rows.append(r)
        print(r, flush=True)
    print(f"\n{rows[0]['what']}/s | SQL statements per op | transactions per op | "
          "process CPU ms per op (client and in-process sandbox included)")
    for r in rows:
        print(f"{r['rate_per_s']:9} | {r['statements_per_create']:21} | "
              f"{r['transactions_per_create']:19} | {r['process_cpu_ms_per_create']}")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.hidden", description=__doc__.split("\n")[0])
    p.add_argument("--db", help="database URL (default: the bench PostgreSQL, recreated)")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--publish-rate", type=float, default=0.0, metavar="PER_S",
                   help="publish bare events at this rate instead of creating orders")
    p.add_argument("--cycle-rate", type=float, default=0.0, metavar="PER_S",
                   help="full payment cycles offered at this rate instead of creates")
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
