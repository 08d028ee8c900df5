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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
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


@dataclass
class InProcess:
    """The app on one database with the bank channel's sandbox mounted, served through
    `httpx.ASGITransport`, its background jobs off (the caller drives the dispatcher)."""

    settings: Settings
    db: Database
    http: httpx.AsyncClient
    app: FastAPI
    sandbox: Any

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
        """A request signed as the demo merchant; its JSON answer."""
        raw = orjson.dumps(body) if body is not None else b""
        headers = sign_request(app_id=DEMO_APP_ID, secret=DEMO_SECRET, method=method,
                               path=path, body=raw, timestamp=int(time.time()))
        resp = await self.http.request(method, path, content=raw, headers=headers)
        resp.raise_for_status()
        doc: dict[str, Any] = resp.json()
        return doc

    async def pay(self, nos: list[str], *, together: bool = False) -> list[str]:
        """The full cycle for each out_trade_no: signed create, the payer scans, the
        channel's callback lands, the dispatcher drains the outbox (every consumer it has),
        the merchant is notified. `together`: the creates and scans run concurrently."""
        async def create(no: str) -> dict[str, Any]:
            return await self.call("POST", "/api/v1/orders",
                                   order_body(no, notify_url=f"{BASE}/merchant/notify"))

        async def scan(order: dict[str, Any]) -> None:
            (await self.http.post("/sandbox/bankpay/wallet/scan", json={
                "code_url": order["code_url"], "payer_id": PAYER})).raise_for_status()

        if together:
            orders = list(await asyncio.gather(*(create(no) for no in nos)))
            await asyncio.gather(*(scan(o) for o in orders))
        else:
            orders = [await create(no) for no in nos]
            for o in orders:
                await scan(o)
        for _ in range(400):  # the sandbox's callbacks are tasks: let them land
            if not self.sandbox.state.sandbox.tasks:
                break
            await asyncio.sleep(0.005)
        from fulema.payments import notifications

        await self.app.state.dispatcher.drain()
        await notifications.deliver_due(self.db, self.settings, self.http)
        return [str(o["order_id"]) for o in orders]


@asynccontextmanager
async def in_process(database_url: str, data_dir: Path) -> AsyncIterator[InProcess]:
    """`InProcess` with the demo merchant onboarded; closed (and the sandbox's pending
    callbacks cancelled) on the way out."""
    from fulema.app import create_app
    from fulema.merchants.service import onboard_demo_merchant

    settings = Settings(database_url=database_url, public_base_url=BASE, data_dir=data_dir,
                        enabled_channels=["bankpay"], run_background=False, seed_demo=False,
                        environment="development",
                        # the notify receiver is this app's own route, reached by the name
                        # BASE gives it (no DNS: the outbound guard would refuse it)
                        outbound_allow_hosts=[BASE.removeprefix("http://")])
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
    sandbox: Any = next(r.app for r in app.routes
                        if isinstance(r, Mount) and r.path == "/sandbox/bankpay")
    try:
        await onboard_demo_merchant(db, settings=settings)
        yield InProcess(settings=settings, db=db, http=http, app=app, sandbox=sandbox)
    finally:
        # The in-process sandbox's callback tasks must not outlive the run: one left
        # mid-transaction holds SQLite's write lock while the harness waits for the server it
        # starts next on the same file ("database is locked" at that server's startup).
        pending = list(sandbox.state.sandbox.tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await http.aclose()
        await db.dispose()


async def statements_per_op(database_url: str, data_dir: Path, *, n: int = 10
                            ) -> dict[str, float]:
    tag = f"C{int(time.time() * 1000):x}"
    paid: list[str] = []
    async with in_process(database_url, data_dir) as run:

        async def measure(batch: Any) -> float:
            before = StatementCounter.total
            await batch()
            return round((StatementCounter.total - before) / n, 1)

        async def creates(letter: str = "c") -> None:
            for i in range(n):
                await run.call("POST", "/api/v1/orders", order_body(f"{tag}{letter}{i:04d}"))

        async def cycles(letter: str = "y") -> None:
            paid.extend(await run.pay([f"{tag}{letter}{i:04d}" for i in range(n)]))

        async def barcodes() -> None:
            for i in range(n):
                code = (await run.http.post(f"/sandbox/bankpay/wallet/payers/{PAYER}/code")).json()
                await run.call("POST", "/api/v1/orders", {
                    "out_trade_no": f"{tag}b{i:04d}", "amount": 100, "subject": "bench",
                    "way_code": "BARCODE", "auth_code": code["auth_code"]})

        async def queries() -> None:
            for i in range(n):
                await run.call("GET", f"/api/v1/orders/{paid[i % len(paid)]}")

        await creates("w")  # warm: first-use queries (merchant lookups, caches) do not count
        counted = {"create": await measure(creates), "cycle": await measure(cycles),
                   "barcode": await measure(barcodes), "query": await measure(queries)}
        # The same cycle with two consumers of every event in place (a STOP one like the
        # ledger, a DEAD_LETTER one like points), whose handlers write nothing: what the
        # event design itself costs per payment (sequence numbers, positions).
        run.app.state.dispatcher.consumers.update(check_unique([
            Consumer("bench.ledger", _noop, on_poison=Poison.STOP),
            Consumer("bench.points", _noop)]))
        await run.app.state.dispatcher.drain()
        counted["cycle_2_consumers"] = await measure(lambda: cycles("z"))
        return counted
