"""Exact SQL statements per operation, counted in process with `StatementCounter`.

The live server's counter is out of reach (separate processes; nothing new is exposed in src),
so this runs the very same app in the harness process through `httpx.ASGITransport`, on the
same database, with its sandbox mounted in process, and divides the counter's change by the
operations run. It complements the pg_stat_database estimate from the live run, which counts
transactions and rows rather than statements.
"""

from __future__ import annotations

import asyncio
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
from fulema.core.events import Consumer, Event, Poison
from fulema.core.events.consumers import check_unique
from fulema.gateway.signing import sign_request

BASE = "http://bench"


async def _noop(_db: Database, _event: Event) -> None:
    return None


async def statements_per_op(database_url: str, data_dir: Path, *, n: int = 10
                            ) -> dict[str, float]:
    from fulema.app import create_app
    from fulema.merchants.service import onboard_demo_merchant
    from fulema.payments import notifications

    settings = Settings(database_url=database_url, public_base_url=BASE, data_dir=data_dir,
                        enabled_channels=["bankpay"], run_background=False, seed_demo=False,
                        environment="development")
    db = Database(database_url)
    transport = httpx.ASGITransport(app=FastAPI())
    http = httpx.AsyncClient(transport=transport, base_url=BASE)
    app = create_app(settings, db=db, http=http)
    # The measured server runs its dispatcher in process (no NOTIFY); the jobs here are driven
    # by hand (run_background=False), which would otherwise count a NOTIFY per transaction.
    db.notify_other_processes = False
    transport.app = app

    async def ack(request: Request) -> PlainTextResponse:
        return PlainTextResponse("SUCCESS")

    app.add_api_route("/merchant/notify", ack, methods=["POST"])
    sandbox: Any = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == "/sandbox/bankpay")
    tag = f"C{int(time.time() * 1000):x}"

    async def call(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        raw = orjson.dumps(body) if body is not None else b""
        headers = sign_request(app_id=DEMO_APP_ID, secret=DEMO_SECRET, method=method, path=path,
                               body=raw, timestamp=int(time.time()))
        resp = await http.request(method, path, content=raw, headers=headers)
        resp.raise_for_status()
        doc: dict[str, Any] = resp.json()
        return doc

    async def measure(batch: Any) -> float:
        before = StatementCounter.total
        await batch()
        return round((StatementCounter.total - before) / n, 1)

    async def creates(letter: str = "c") -> None:
        for i in range(n):
            await call("POST", "/api/v1/orders", order_body(f"{tag}{letter}{i:04d}"))

    paid: list[str] = []

    async def cycles(letter: str = "y") -> None:
        orders = [await call("POST", "/api/v1/orders",
                             order_body(f"{tag}{letter}{i:04d}", notify_url=f"{BASE}/merchant/notify"))
                  for i in range(n)]
        for o in orders:
            (await http.post("/sandbox/bankpay/wallet/scan",
                             json={"code_url": o["code_url"], "payer_id": PAYER})).raise_for_status()
        for _ in range(200):  # the sandbox's callbacks are tasks: let them land
            if not sandbox.state.sandbox.tasks:
                break
            await asyncio.sleep(0.01)
        await app.state.dispatcher.drain()
        await notifications.deliver_due(db, settings, http)
        paid.extend(o["order_id"] for o in orders)

    async def barcodes() -> None:
        for i in range(n):
            code = (await http.post(f"/sandbox/bankpay/wallet/payers/{PAYER}/code")).json()
            await call("POST", "/api/v1/orders", {
                "out_trade_no": f"{tag}b{i:04d}", "amount": 100, "subject": "bench",
                "way_code": "BARCODE", "auth_code": code["auth_code"]})

    async def queries() -> None:
        for i in range(n):
            await call("GET", f"/api/v1/orders/{paid[i % len(paid)]}")

    try:
        await onboard_demo_merchant(db, settings=settings)
        await creates("w")  # warm: first-use queries (merchant lookups, caches) do not count
        counted = {"create": await measure(creates), "cycle": await measure(cycles),
                   "barcode": await measure(barcodes), "query": await measure(queries)}
        # The same cycle with two consumers of every event in place (a STOP one like the
        # ledger, a DEAD_LETTER one like points), whose handlers write nothing: what the
        # event design itself costs per payment (sequence numbers, positions).
        app.state.dispatcher.consumers.update(check_unique([
            Consumer("bench.ledger", _noop, on_poison=Poison.STOP),
            Consumer("bench.points", _noop)]))
        await app.state.dispatcher.drain()
        counted["cycle_2_consumers"] = await measure(lambda: cycles("z"))
        return counted
    finally:
        # The in-process sandbox's callback tasks must not outlive the count: one left
        # mid-transaction holds SQLite's write lock while the harness waits for the server it
        # starts next on the same file ("database is locked" at that server's startup).
        pending = list(sandbox.state.sandbox.tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await http.aclose()
        await db.dispose()
