"""`fulema dr drill`: a switchover under payment load, then proof that nothing was lost.

A drill the bank can run on its own standby pair: the real app (in process, bank-channel
sandbox) takes signed order creates from several merchants' worth of concurrent clients while
`ops.dr.switchover` moves the database to the standby. Clients behave as merchants do: a
create that fails is retried with the same `out_trade_no` (idempotent). Afterwards every order
the API acknowledged is looked up on the new primary, the outbox is drained there and a payment
made after the switchover is paid and notified. The figures are measured, not asserted here:
RPO (acknowledged orders missing, and WAL bytes the standby had not replayed) and RTO (the
database's, and the service's: the longest time no create was acknowledged).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import func, select

from fulema.app import create_app
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.events import OutboxEvent
from fulema.gateway.signing import sign_request
from fulema.merchants import service as merchants
from fulema.ops import dr
from fulema.ops.worker import run_all_once


@dataclass
class DrillReport:
    switchover: dr.SwitchoverReport
    acknowledged: int
    missing: int
    failed_attempts: int
    service_gap_seconds: float
    unsequenced_events: int
    notified_after_switchover: bool
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return (self.missing == 0 and self.switchover.rpo_bytes == 0
                and self.unsequenced_events == 0 and self.notified_after_switchover)


class _Client:
    def __init__(self, http: httpx.AsyncClient, app_id: str, secret: str) -> None:
        self.http, self.app_id, self.secret = http, app_id, secret

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None
                   ) -> httpx.Response:
        raw = orjson.dumps(body) if body is not None else b""
        headers = sign_request(app_id=self.app_id, secret=self.secret, method=method, path=path,
                               body=raw, timestamp=clock.timestamp())
        return await self.http.request(method, path, content=raw, headers=headers)


async def run_drill(nodes: list[str], settings: Settings, *, seconds: float = 10.0,
                    concurrency: int = 8, switch_after: float = 0.3) -> DrillReport:
    url = dr.platform_url(nodes)
    db = Database(url)
    await db.create_all()
    settings = settings.model_copy(update={
        "database_url": url, "run_background": False, "seed_demo": False,
        "mount_sandbox": True, "enabled_channels": ["bankpay"],
        # the merchant endpoint of the drill is this app itself (outbound policy: docs/security.md)
        "outbound_allow_hosts": [*settings.outbound_allow_hosts, "drill"]})
    transport = httpx.ASGITransport(app=FastAPI())
    http = httpx.AsyncClient(transport=transport, base_url="http://drill")
    app = create_app(settings, db=db, http=http)
    transport.app = app
    notified: list[str] = []

    async def receive(request: Request) -> PlainTextResponse:
        notified.append(orjson.loads(await request.body()).get("data", {}).get("order_id", ""))
        return PlainTextResponse("SUCCESS")

    app.add_api_route("/drill/notify", receive, methods=["POST"])
    demo = await merchants.onboard_demo_merchant(db, settings=settings)
    client = _Client(http, demo.app_id, demo.secret)
    try:
        return await _drive(app, db, client, nodes, notified, seconds=seconds,
                            concurrency=concurrency, switch_after=switch_after)
    finally:
        await http.aclose()
        await db.dispose()


async def _drive(app: FastAPI, db: Database, client: _Client, nodes: list[str],
                 notified: list[str], *, seconds: float, concurrency: int,
                 switch_after: float) -> DrillReport:
    acked: dict[str, str] = {}
    ack_times: list[float] = []
    errors: dict[str, int] = {}
    failed = 0
    stop = asyncio.Event()
    run_id = f"{int(time.time()) % 100000:05d}"

    async def merchant(worker: int) -> None:
        nonlocal failed
        n = 0
        while not stop.is_set():
            no = f"DR{run_id}{worker:02d}{n:06d}"
            while True:  # a merchant retries the same number until it is acknowledged
                try:
                    resp = await client.call("POST", "/api/v1/orders", {
                        "out_trade_no": no, "amount": 1250, "subject": "drill",
                        "way_code": "QR_DYNAMIC", "channel": "bankpay"})
                    if resp.status_code == 200:
                        acked[no] = resp.json()["order_id"]
                        ack_times.append(time.monotonic())
                        break
                    key = f"HTTP {resp.status_code}"
                except (httpx.HTTPError, OSError) as exc:
                    key = type(exc).__name__
                failed += 1
                errors[key] = errors.get(key, 0) + 1
                await asyncio.sleep(0.05)
            n += 1

    workers = [asyncio.create_task(merchant(i)) for i in range(concurrency)]
    await asyncio.sleep(seconds * switch_after)
    switched_at = time.monotonic()
    report = await dr.switchover(nodes)
    await asyncio.sleep(max(0.0, seconds * (1 - switch_after)))
    stop.set()
    await asyncio.gather(*workers)

    # The service's RTO: the longest stretch in which no create was acknowledged at all.
    times = sorted([switched_at, *ack_times])
    gap = max((b - a for a, b in itertools.pairwise(times)), default=float("inf"))
    if not any(t >= switched_at for t in ack_times):
        gap = float("inf")

    missing = 0
    for no, order_id in acked.items():
        resp = await client.call("GET", f"/api/v1/orders/{order_id}")
        if resp.status_code != 200 or resp.json().get("out_trade_no") != no:
            missing += 1

    paid_ok = await _pay_and_notify(app, client, run_id, notified)
    for _ in range(3):
        await run_all_once(app)
    async with db.transaction() as s:
        unsequenced = int(await s.scalar(select(func.count()).select_from(OutboxEvent)
                                         .where(OutboxEvent.seq.is_(None))) or 0)
    return DrillReport(switchover=report, acknowledged=len(acked), missing=missing,
                       failed_attempts=failed, service_gap_seconds=round(gap, 3),
                       unsequenced_events=unsequenced, notified_after_switchover=paid_ok,
                       errors=errors)


async def _pay_and_notify(app: FastAPI, client: _Client, run_id: str,
                          notified: list[str]) -> bool:
    """A payment made on the new primary is paid by the payer and notified to the merchant."""
    resp = await client.call("POST", "/api/v1/orders", {
        "out_trade_no": f"DRPAY{run_id}", "amount": 1250, "subject": "after switchover",
        "way_code": "QR_DYNAMIC", "channel": "bankpay", "notify_url": "http://drill/drill/notify"})
    if resp.status_code != 200:
        return False
    order = resp.json()
    await client.http.post("/sandbox/bankpay/wallet/scan",
                           json={"code_url": order["code_url"], "payer_id": "payer_rich"})
    for _ in range(40):
        await run_all_once(app)
        if order["order_id"] in notified:
            return True
        await asyncio.sleep(0.05)
    return False
