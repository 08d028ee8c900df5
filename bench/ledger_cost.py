"""What the ledger costs a payment: full-cycle payments/s with and without the `ledger.postings`
consumer, in one run, on the same database.

The cycle is calibrate.py's, in process through `httpx.ASGITransport` with the bank channel's
sandbox mounted: signed create, the payer scans, the channel's callback, the dispatcher drains
the outbox (every declared consumer), the merchant is notified. Phase "without" runs with the
ledger's consumer removed from the dispatcher; then the consumer is put back, its backfill of
the first phase is drained untimed, and phase "with" runs the same number of cycles. Payments
run `--concurrency` at a time; the dispatcher drains after each wave, so its work is inside the
measured time. Figures only, no assertion: `python -m bench.ledger_cost --n 300`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.routing import Mount

from bench.scenarios import DEMO_APP_ID, DEMO_SECRET, PAYER, order_body
from fulema.core.config import Settings
from fulema.core.db import Database, StatementCounter
from fulema.gateway.signing import sign_request

BASE = "http://bench"


async def measure(database_url: str, data_dir: Path, *, n: int, concurrency: int,
                  rounds: int) -> dict[str, Any]:
    from fulema.app import create_app
    from fulema.ledger import service as ledger
    from fulema.ledger.jobs import CONSUMER
    from fulema.merchants.service import onboard_demo_merchant
    from fulema.migrate import upgrade
    from fulema.payments import notifications

    await asyncio.to_thread(upgrade, database_url)
    settings = Settings(database_url=database_url, public_base_url=BASE, data_dir=data_dir,
                        enabled_channels=["bankpay"], run_background=False, seed_demo=False,
                        environment="development")
    db = Database(database_url)
    transport = httpx.ASGITransport(app=FastAPI())
    http = httpx.AsyncClient(transport=transport, base_url=BASE)
    app = create_app(settings, db=db, http=http)
    db.notify_other_processes = False
    transport.app = app

    async def ack(request: Request) -> PlainTextResponse:
        return PlainTextResponse("SUCCESS")

    app.add_api_route("/merchant/notify", ack, methods=["POST"])
    sandbox: Any = next(r.app for r in app.routes
                        if isinstance(r, Mount) and r.path == "/sandbox/bankpay")
    dispatcher = app.state.dispatcher
    ledger_consumer = dispatcher.consumers.pop(CONSUMER)
    tag = f"L{int(time.time() * 1000):x}"

    async def call(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        raw = orjson.dumps(body)
        headers = sign_request(app_id=DEMO_APP_ID, secret=DEMO_SECRET, method=method, path=path,
                               body=raw, timestamp=int(time.time()))
        resp = await http.request(method, path, content=raw, headers=headers)
        resp.raise_for_status()
        doc: dict[str, Any] = resp.json()
        return doc

    async def one(no: str) -> None:
        o = await call("POST", "/api/v1/orders", order_body(no, notify_url=f"{BASE}/merchant/notify"))
        (await http.post("/sandbox/bankpay/wallet/scan",
                         json={"code_url": o["code_url"], "payer_id": PAYER})).raise_for_status()

    async def cycles(letter: str) -> float:
        started = time.perf_counter()
        for wave in range(0, n, concurrency):
            await asyncio.gather(*(one(f"{tag}{letter}{i:05d}")
                                   for i in range(wave, min(n, wave + concurrency))))
            for _ in range(400):  # the sandbox's callbacks are tasks: let them land
                if not sandbox.state.sandbox.tasks:
                    break
                await asyncio.sleep(0.002)
            await dispatcher.drain()
            await notifications.deliver_due(db, settings, http)
        return time.perf_counter() - started

    try:
        await onboard_demo_merchant(db, settings=settings)
        await cycles("w")  # warm-up (first-use caches), not counted
        without = with_ledger = backfill = 0.0
        sql_without = sql_with = 0
        for r in range(rounds):  # alternated, so a load change on the machine hits both
            dispatcher.consumers.pop(CONSUMER, None)
            before = StatementCounter.total
            without += await cycles(f"a{r}")
            sql_without += StatementCounter.total - before
            dispatcher.consumers[CONSUMER] = ledger_consumer
            await dispatcher.register()  # first time: from the beginning of history
            backfill_started = time.perf_counter()
            await dispatcher.drain()  # the ledger catches up with what it missed, untimed
            backfill += time.perf_counter() - backfill_started
            before = StatementCounter.total
            with_ledger += await cycles(f"b{r}")
            sql_with += StatementCounter.total - before
        n_total = n * rounds
        tb = await ledger.trial_balance(db)
        entries = len(await ledger.entries_for(db, business_ref=await _last_order(db)))
        return {"database": db.dialect, "payments_per_phase": n_total,
                "concurrency": concurrency, "rounds": rounds,
                "without_ledger_per_s": round(n_total / without, 1),
                "with_ledger_per_s": round(n_total / with_ledger, 1),
                "ledger_cost_pct": round(100 * (with_ledger - without) / without, 1),
                "backfill_payments_per_s": round(n_total / backfill, 1),
                "sql_statements_per_payment_without": round(sql_without / n_total, 1),
                "sql_statements_per_payment_with": round(sql_with / n_total, 1),
                "trial_balance_total": tb.total, "last_order_entries": entries}
    finally:
        pending = list(sandbox.state.sandbox.tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await http.aclose()
        await db.dispose()


async def _last_order(db: Database) -> str:
    from sqlalchemy import func, select

    from fulema.payments.models import Order

    async with db.transaction() as s:
        return str(await s.scalar(select(func.max(Order.id))))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ledger_cost", description=__doc__)
    p.add_argument("--n", type=int, default=100, help="payments per phase and round")
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2, help="alternations of the two phases")
    p.add_argument("--database-url", default="",
                   help="an empty database to use (default: a fresh SQLite file)")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = a.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'ledger_bench.db'}"
        result = asyncio.run(measure(url, Path(tmp), n=a.n, concurrency=a.concurrency,
                                     rounds=a.rounds))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
