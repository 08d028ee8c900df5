"""What each scenario does (one operation, as a merchant or payer would do it) and how long
each runs in the quick and the full mode.

An operation is an async callable taking its sequence number and returning an `OpResult`; the
load generator (`bench.loadgen`) runs it closed-loop (N workers back to back) or open-loop (a
fixed arrival rate, latency counted from the scheduled start so a stalled server cannot hide
its queue: no coordinated omission).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.httpclient import Pool
from fulema.gateway.signing import sign_request

DEMO_APP_ID = "app_demo"
DEMO_SECRET = "demo-secret-change-me"  # noqa: S105 - the published demo merchant's secret
PAYER = "payer_rich"
AMOUNT_FEN = 100


@dataclass
class OpResult:
    ok: bool
    error: str | None = None
    latency: float | None = None  # seconds; None -> the runner's own measurement
    record: dict[str, Any] | None = None
    status: int | None = None  # the HTTP status of a refused or failed answer, if there was one


Op = Callable[[int], Awaitable[OpResult]]


@dataclass(frozen=True)
class Phase:
    """One measured phase: which operation, how it is driven, and its bounds."""

    name: str
    op: str  # ping | create | cycle | barcode | query | burst | best
    mode: str = "closed"  # closed | open
    concurrency: int = 32
    duration: float = 10.0
    rate: float | None = None  # open loop: arrivals per second
    max_ops: int = 200_000


@dataclass(frozen=True)
class Plan:
    ping: float
    create: float
    fixed: float
    cycle: float
    barcode: float
    query: float
    burst: float
    pgbench: int
    settle: float  # seconds for pg_stat_database to flush idle backends (PG 15: 10 s)
    profile: float
    sweep: float = 0.0  # seconds per point of the create concurrency sweep (0: skipped)
    cycle_concurrency: int = 64  # cycles wait ~1 s for the notify loop: many must be in flight
    pgbench_scale: int = 8  # scale = clients (see bench.baselines); quick mode: 1, a smoke only


QUICK = Plan(ping=1.0, create=1.5, fixed=1.0, cycle=2.0, barcode=1.0, query=1.0, burst=1.0,
             pgbench=3, settle=0.0, profile=0.0, cycle_concurrency=8,
             pgbench_scale=1)
FULL = Plan(ping=5.0, create=8.0, fixed=6.0, cycle=8.0, barcode=5.0, query=5.0, burst=2.0,
            pgbench=12, settle=10.5, profile=8.0, sweep=3.0)
SWEEP = (4, 16, 64)  # closed-loop concurrencies probed for order create (per worker: x N)
PER_WORKER_CONCURRENCY = 8  # below the server's DB pool (10): no overflow connection churn


class Merchant:
    """Signs requests exactly as docs/api.md says a merchant must."""

    def __init__(self, pool: Pool, *, app_id: str = DEMO_APP_ID, secret: str = DEMO_SECRET,
                 headers: dict[str, str] | None = None) -> None:
        self.pool, self.app_id, self.secret = pool, app_id, secret
        self.headers = headers or {}  # e.g. X-Forwarded-For: the merchant's own address

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None
                   ) -> tuple[int, dict[str, Any]]:
        raw = orjson.dumps(body) if body is not None else b""
        headers = sign_request(app_id=self.app_id, secret=self.secret, method=method, path=path,
                               body=raw, timestamp=int(time.time()))
        headers.update(self.headers)
        resp = await self.pool.request(method, path, body=raw, headers=headers)
        try:
            doc = orjson.loads(resp.body) if resp.body else {}
        except orjson.JSONDecodeError:
            doc = {"raw": resp.body[:200].decode("utf-8", "replace")}
        return resp.status, doc if isinstance(doc, dict) else {"value": doc}


def order_body(out_trade_no: str, *, notify_url: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"out_trade_no": out_trade_no, "amount": AMOUNT_FEN,
                            "subject": "bench", "way_code": "QR_DYNAMIC", "channel": "bankpay"}
    if notify_url:
        body["notify_url"] = notify_url
    return body


def _fail(status: int, doc: dict[str, Any]) -> OpResult:
    return OpResult(ok=False, error=f"{status} {doc.get('code', '')}".strip(), status=status)


def path_of(url: str) -> str:
    return urlsplit(url).path


@dataclass
class Targets:
    server: Pool
    sandbox: Pool
    receiver: Pool
    receiver_url: str
    prefix: str
    order_ids: list[str] = field(default_factory=list)
    app_id: str = DEMO_APP_ID  # which merchant app signs (bench.burst drives two)
    secret: str = DEMO_SECRET
    headers: dict[str, str] = field(default_factory=dict)


def build_op(name: str, t: Targets) -> Op:
    merchant = Merchant(t.server, app_id=t.app_id, secret=t.secret, headers=t.headers)

    async def ping(i: int) -> OpResult:
        resp = await t.server.request("GET", "/ping")
        return OpResult(ok=resp.status == 200, error=None if resp.status == 200 else str(resp.status))

    async def create(i: int) -> OpResult:
        no = f"{t.prefix}{i:08d}"
        status, doc = await merchant.call("POST", "/api/v1/orders", order_body(no))
        if status != 200 or doc.get("status") != "PAYING":
            return _fail(status, doc)
        return OpResult(ok=True, record={"no": no, "id": doc["order_id"]})

    async def cycle(i: int) -> OpResult:
        no = f"{t.prefix}{i:08d}"
        status, doc = await merchant.call(
            "POST", "/api/v1/orders", order_body(no, notify_url=f"{t.receiver_url}/notify"))
        if status != 200 or not doc.get("code_url"):
            return _fail(status, doc)
        scan = await t.sandbox.request("POST", "/sandbox/bankpay/wallet/scan", body=orjson.dumps(
            {"code_url": doc["code_url"], "payer_id": PAYER}),
            headers={"Content-Type": "application/json"})
        if scan.status != 200:
            return OpResult(ok=False, error=f"scan {scan.status}")
        waited = await t.receiver.request("GET", f"/wait/{doc['order_id']}?timeout=60")
        if waited.status != 200:
            return OpResult(ok=False, error="notification not received in 60 s")
        return OpResult(ok=True, record={"no": no, "id": doc["order_id"]})

    async def best(i: int) -> OpResult:
        """Order create with `"discount": "best"` (issue 10): the order chooses and reserves
        its discount in its own transaction. Without payer_id the only discount it can take is
        a campaign's (bench.contention seeds one); once the budget is spent the order is made
        at full price, which is a success, not an error: `discount` in the record says which."""
        no = f"{t.prefix}{i:08d}"
        status, doc = await merchant.call("POST", "/api/v1/orders",
                                          {**order_body(no), "discount": "best"})
        if status != 200 or doc.get("status") != "PAYING":
            return _fail(status, doc)
        return OpResult(ok=True, record={"no": no, "id": doc["order_id"],
                                         "discount": int(doc.get("discount_amount") or 0)})

    async def barcode(i: int) -> OpResult:
        code = await t.sandbox.request("POST", f"/sandbox/bankpay/wallet/payers/{PAYER}/code")
        if code.status != 200:
            return OpResult(ok=False, error=f"payer code {code.status}")
        auth_code = orjson.loads(code.body)["auth_code"]
        no = f"{t.prefix}{i:08d}"
        started = time.perf_counter()
        status, doc = await merchant.call("POST", "/api/v1/orders", {
            "out_trade_no": no, "amount": AMOUNT_FEN, "subject": "bench", "way_code": "BARCODE",
            "auth_code": auth_code})
        latency = time.perf_counter() - started  # the merchant's call only, not the payer's app
        if status != 200 or doc.get("status") != "SUCCESS":
            return _fail(status, doc)
        return OpResult(ok=True, latency=latency, record={"no": no, "id": doc["order_id"]})

    async def query(i: int) -> OpResult:
        if not t.order_ids:
            return OpResult(ok=False, error="no orders to query")
        order_id = t.order_ids[i % len(t.order_ids)]
        status, doc = await merchant.call("GET", f"/api/v1/orders/{order_id}")
        if status != 200 or doc.get("order_id") != order_id:
            return _fail(status, doc)
        return OpResult(ok=True)

    ops: dict[str, Op] = {"ping": ping, "create": create, "burst": create, "cycle": cycle,
                          "barcode": barcode, "query": query, "best": best}
    return ops[name]
