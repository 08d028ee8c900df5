"""Inbound protection: rate limits that degrade then reject, fairness between merchants, and
adaptive load shedding, in front of every handler.

Three layers, cheapest first, so refused work costs as little as possible:
1. **Adaptive** (Sentinel's system rule): when requests in flight exceed what the process has
   shown it can serve (the most it completed per second in the last window × its minimum
   latency), new work is refused at once (503 `OVERLOADED`) instead of queueing behind work
   that will time out anyway. A floor keeps it quiet at low concurrency.
2. **Before authentication** (this middleware): the global bucket and the source's bucket
   (the public cashier and OAuth pages by source IP and by plate, the merchant API by source
   IP); answered 429 `RATE_LIMITED` with `Retry-After`. The result pages' status poll
   (`GET /pay/result/{id}/status`, one primary-key read) has its own, larger per-IP bucket:
   payers behind one carrier NAT address share an IP, and their polling must neither starve
   each other nor spend the budget that limits cashier submissions. The merchant portal's
   CSV downloads are charged like the merchant API (global and per IP), so they are marked
   degraded under load and wait (`shed_when_degraded`); the portal's pages are not limited.
3. **After authentication** (`admit_app`, called by the merchant API once the signature is
   good, so nobody can spend another merchant's quota by naming its app id): the app's bucket
   per endpoint class (create, query, refund, other), and the app's share of concurrency
   once the process is filling up (`Protection.over_share`), so one merchant's burst leaves
   the others their capacity and a slow process does not refuse a merchant at its usual rate.

Channel callbacks are never limited or shed (a payment the channel reports must land), nor
are health and metrics endpoints; jobs that carry accepted refunds do not pass through here.
A request that passes above the soft level is marked degraded (`request.state.degraded`,
answered with `X-Fulema-Degraded: 1`) so handlers can shed optional work for it.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fulema.core.channel_settings import RateLimitSection
from fulema.core.clock import clock
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.gateway.ratelimit import BucketStore, Charge, Decision, Limit, MemoryBuckets

CALLBACK, CASHIER, CREATE, QUERY, REFUND, MERCHANT, OPS, EXEMPT = (
    "callback", "cashier", "create", "query", "refund", "merchant", "ops", "exempt")
EXPORT = "export"  # the merchant portal's CSV downloads: charged, so they can be shed
POLL = "cashier-poll"  # the result pages' status poll: its own, larger per-IP budget

# From this share of the adaptive limit in flight, apps' concurrency shares are enforced.
PRESSED = 0.75

_REFUND = re.compile(r"^/api/v1/orders/[^/]+/refunds$")
_PLATE = re.compile(r"^/pay/q/([^/?]+)")
_POLL = re.compile(r"^/pay/result/[^/]+/status$")


def classify(method: str, path: str) -> str:
    """The endpoint class a request is limited as."""
    if path.startswith("/callbacks/"):
        return CALLBACK
    if path.startswith("/pay/"):
        return POLL if method == "GET" and _POLL.match(path) else CASHIER
    if path.startswith("/api/v1/"):
        if method == "POST" and path == "/api/v1/orders":
            return CREATE
        if method == "POST" and _REFUND.match(path):
            return REFUND
        return QUERY if method == "GET" else MERCHANT
    if path.startswith("/ops/"):
        return OPS
    if path.startswith("/portal/") and path.endswith(".csv"):
        return EXPORT
    return EXEMPT


@dataclass
class _LoadWindow:
    """Completions per second and latencies over the last `seconds`, in one-second slots."""

    seconds: int = 10
    slots: deque[tuple[int, int, float]] = field(default_factory=deque)  # (second, done, min rt)
    _capacity: float = float("inf")

    def record(self, now: float, latency: float) -> None:
        second = int(now)
        if self.slots and self.slots[-1][0] == second:
            _, done, best = self.slots[-1]
            self.slots[-1] = (second, done + 1, min(best, latency))
            return
        while self.slots and self.slots[0][0] <= second - self.seconds:
            self.slots.popleft()
        # A second has ended: the capacity is worked out here, once a second, not on every
        # request (every refusal asks for it).
        if self.slots:
            self._capacity = (max(done for _, done, _ in self.slots)
                              * min(rt for _, _, rt in self.slots))
        else:
            self._capacity = float("inf")
        self.slots.append((second, 1, latency))

    def capacity(self) -> float:
        """In-flight requests the process has shown it can carry: the most it completed in a
        whole second of the window × the least latency of those seconds (inf until a whole
        second has been seen)."""
        return self._capacity


class Protection:
    """The limits of one API process (its buckets may be shared through Redis)."""

    def __init__(self, config: RateLimitSection, store: BucketStore | None = None) -> None:
        self.config = config
        self.store: BucketStore = store or MemoryBuckets()
        self.inflight = 0
        self.app_inflight: dict[str, int] = {}
        self.window = _LoadWindow()
        c = config
        self.global_limit = Limit(c.global_rate, c.global_burst)
        self.ip_api = Limit(c.ip_api_rate, c.ip_api_burst)
        self.ip_cashier = Limit(c.cashier_ip_rate, c.cashier_ip_burst)
        self.plate = Limit(c.cashier_plate_rate, c.cashier_plate_burst)
        self.ip_poll = Limit(c.cashier_poll_ip_rate, c.cashier_poll_ip_burst)
        self.per_class = {CREATE: Limit(c.app_create_rate, c.app_create_burst),
                          QUERY: Limit(c.app_query_rate, c.app_query_burst),
                          REFUND: Limit(c.app_refund_rate, c.app_refund_burst),
                          MERCHANT: Limit(c.app_other_rate, c.app_other_burst)}

    def limit(self) -> float:
        """In-flight requests past which new work is shed: what the process has shown it can
        carry, never below the floor (inf until it has shown anything)."""
        return max(self.config.adaptive_min_inflight, self.window.capacity())

    def overloaded(self) -> bool:
        return self.config.adaptive_min_inflight > 0 and self.inflight > self.limit()

    def pressed(self) -> bool:
        """In flight at `PRESSED` of the limit or more: the process is filling up."""
        return self.inflight >= PRESSED * self.limit()

    def over_share(self, app_id: str) -> bool:
        """Whether the app's concurrency share refuses its next request.

        Only while the process is pressed, and then the app holding the most slots first. A
        merchant sending at its normal rate holds rate × latency slots: when the whole process
        slows down (another merchant's burst, a neighbour on the machine) that count grows
        though the merchant did nothing new, and a fixed share then refused the merchant
        behaving well (measured: B refused 8-26 times in bench.burst while A burst). While
        the process has room nobody is refused for what it has in flight; once it fills up,
        refusing the biggest holder keeps it from reaching the adaptive 503, which refuses
        every merchant alike (it runs before the signature, so it cannot tell them apart)."""
        mine = self.app_inflight.get(app_id, 0)
        if mine < self.config.app_concurrency or not self.pressed():
            return False
        return mine >= max(self.app_inflight.values())

    async def before_auth(self, klass: str, source: str, path: str) -> Decision:
        charges = [Charge("global", self.global_limit)]
        if klass == CASHIER:
            charges.append(Charge(f"ip-cashier:{source}", self.ip_cashier))
            plate = _PLATE.match(path)
            if plate:
                charges.append(Charge(f"plate:{plate.group(1)}", self.plate))
        elif klass == POLL:  # many payers behind one carrier NAT address each poll every 2-5 s
            charges.append(Charge(f"ip-poll:{source}", self.ip_poll))
        elif klass != OPS:
            charges.append(Charge(f"ip:{source}", self.ip_api))
        return await self.store.take(charges, now=clock.now().timestamp(),
                                     soft=self.config.soft)

    async def admit_app(self, app_id: str, klass: str) -> Decision:
        limit = self.per_class.get(klass)
        if limit is None:
            return Decision(True)
        if self.over_share(app_id):
            return Decision(False, retry_after=1.0, refused_by="app-concurrency")
        return await self.store.take([Charge(f"app:{app_id}:{klass}", limit)],
                                     now=clock.now().timestamp(), soft=self.config.soft)


def _client_ip(scope: Scope, trusted: frozenset[str]) -> str:
    peer = (scope.get("client") or ("-", 0))[0]
    if peer in trusted:
        for name, value in scope.get("headers") or []:
            if name == b"x-forwarded-for":
                return value.decode("latin-1").split(",")[-1].strip() or peer
    return str(peer)


async def admit_app(request: Request, app_id: str) -> None:
    """The merchant API's second layer, after the signature: raises RATE_LIMITED, or takes one
    of the app's concurrency slots until the response is sent."""
    protection: Protection | None = getattr(request.app.state, "protection", None)
    if protection is None or not protection.config.enabled:
        return
    klass = classify(request.method, request.url.path)
    decision = await protection.admit_app(app_id, klass)
    if not decision.allowed:
        raise FulemaError(ErrorCode.RATE_LIMITED,
                          f"too many requests for this app; retry after "
                          f"{max(1, round(decision.retry_after))} s",
                          retry_after=max(1, round(decision.retry_after)))
    if decision.degraded:
        request.state.degraded = True
    protection.app_inflight[app_id] = protection.app_inflight.get(app_id, 0) + 1
    releases: list[Callable[[], None]] = request.scope.setdefault("fulema.release", [])

    def release() -> None:
        left = protection.app_inflight.get(app_id, 1) - 1
        if left > 0:
            protection.app_inflight[app_id] = left
        else:
            protection.app_inflight.pop(app_id, None)

    releases.append(release)


class ProtectionMiddleware:
    """Pure ASGI and the outermost middleware, so a refusal costs the limiter and nothing
    else: measured in process (bench/limiter_cost.py), the request-id, metrics and security
    header middlewares in front of it made a 429 cost three to four times the limiter's own
    work, and under a 10x burst the refusals are most of the requests. A refusal carries
    what those would have added: a request id, the security headers, and a count in the
    request metrics through `on_refuse(endpoint class, status)`."""

    def __init__(self, app: ASGIApp, protection: Protection,
                 on_refuse: Callable[[str, int], None] | None = None) -> None:
        self.app = app
        self.protection = protection
        self.trusted = frozenset(protection.config.trusted_proxies)
        self.on_refuse = on_refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        p = self.protection
        if scope["type"] != "http" or not p.config.enabled:
            await self.app(scope, receive, send)
            return
        klass = classify(scope["method"], scope["path"])
        if klass in {CALLBACK, EXEMPT}:
            await self.app(scope, receive, send)
            return
        if p.overloaded():
            await self._refuse(send, klass, 503, ErrorCode.OVERLOADED, 1.0)
            return
        decision = await p.before_auth(klass, _client_ip(scope, self.trusted), scope["path"])
        if not decision.allowed:
            await self._refuse(send, klass, 429, ErrorCode.RATE_LIMITED, decision.retry_after)
            return
        state = scope.setdefault("state", {})
        if decision.degraded:
            state["degraded"] = True

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start" and state.get("degraded"):
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-fulema-degraded", b"1")]}
            await send(message)

        started = time.monotonic()
        p.inflight += 1
        try:
            await self.app(scope, receive, marked)
        finally:
            p.inflight -= 1
            p.window.record(time.monotonic(), time.monotonic() - started)
            for release in scope.get("fulema.release", []):
                release()

    async def _refuse(self, send: Send, klass: str, status: int, code: ErrorCode,
                      retry_after: float) -> None:
        if self.on_refuse is not None:
            self.on_refuse(klass, status)
        await _refuse(send, klass, status, code, retry_after)


# What web.security_headers adds to every answer (a refusal never reaches it); the refusal
# page loads nothing, so its policy allows nothing.
_REFUSAL_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer")]
_PAGE_POLICY = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


async def _refuse(send: Send, klass: str, status: int, code: ErrorCode,
                  retry_after: float) -> None:
    wait = str(max(1, round(retry_after)))
    rid = new_id("req")
    headers = [(b"retry-after", wait.encode()), (b"x-request-id", rid.encode()),
               *_REFUSAL_HEADERS]
    if klass == CASHIER:  # a payer's phone: a page in their language, not JSON
        body = (f"<!doctype html><meta charset=utf-8><meta name=viewport "
                f"content='width=device-width'><title>稍后再试</title><p>付款人数较多，请 {wait} "
                f"秒后再试。</p><p lang=en>Too many requests: please try again in {wait} s.</p>"
                ).encode()
        headers += [(b"content-type", b"text/html; charset=utf-8"), _PAGE_POLICY]
    else:
        body = orjson.dumps({"code": code.value, "message": code.description, "request_id": rid})
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RecentAnswers:
    """Query answers of the last few seconds, served instead of a fresh query while the app's
    requests are degraded: under a burst, a merchant polling an order gets an answer at most
    `ttl` seconds old (marked `X-Fulema-Cached`) and the database is spared. Per process and
    bounded; never used for anything that changes money."""

    def __init__(self, *, ttl: float = 2.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._items: dict[tuple[str, ...], tuple[float, object]] = {}

    def get(self, key: tuple[str, ...]) -> tuple[float, object] | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        age = clock.now().timestamp() - hit[0]
        return (age, hit[1]) if age <= self.ttl else None

    def put(self, key: tuple[str, ...], value: object) -> None:
        if len(self._items) >= self.size:
            self._items.pop(next(iter(self._items)))  # oldest inserted
        self._items.pop(key, None)
        self._items[key] = (clock.now().timestamp(), value)


def degraded(request: Request) -> bool:
    return bool(getattr(request.state, "degraded", False))


SHED_RETRY_SECONDS = 5  # how long a shed report or export is asked to wait


async def shed_when_degraded(request: Request) -> None:
    """A dependency for reports and exports (CSV statements, reconciliation reports, the trial
    balance): optional work that waits while the platform is degraded, so payments keep the
    capacity. Answers 429 `RATE_LIMITED` with `Retry-After`; nothing was read or written."""
    if degraded(request):
        raise FulemaError(ErrorCode.RATE_LIMITED,
                          f"reports and exports wait while the platform is under load; retry "
                          f"after {SHED_RETRY_SECONDS} s", retry_after=SHED_RETRY_SECONDS)
